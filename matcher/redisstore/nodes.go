package redisstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

// safeConfig is what every node, primary or replica (a replica may be
// promoted), must have: nothing acknowledged is lost on a crash, and
// nothing is evicted.
var safeConfig = [...][2]string{
	{"appendonly", "yes"}, {"appendfsync", "always"},
	{"no-appendfsync-on-rewrite", "no"}, {"maxmemory-policy", "noeviction"},
}

// ServerInfo is what the settings check read from one Redis node: its
// address (never the URL, which may hold a password), role, version, the
// persistence settings as the node reported them ("" when CONFIG is
// disabled), and what is unsafe about it.
type ServerInfo struct {
	Addr     string
	Role     string            // "primary" or "replica"
	Version  string            // "redis 7.2.4", "valkey 8.0.1"; "" when INFO failed
	Settings map[string]string // appendonly, appendfsync, no-appendfsync-on-rewrite, maxmemory-policy
	// Unsafe names each setting that can lose acknowledged writes
	// ("appendfsync everysec"), or why the node could not be checked.
	Unsafe []string
	// NoWaitAOF is set when the node has no WAITAOF command (Redis < 7.2).
	NoWaitAOF bool
}

// Servers returns what the last settings check (at Open, then every
// minute) read from each node, primaries and replicas, by address.
func (s *Store) Servers() []ServerInfo {
	s.serversMu.Lock()
	defer s.serversMu.Unlock()
	return slices.Clone(s.servers)
}

// UnsafeNodes is how many nodes the last settings check found unsafe.
func (s *Store) UnsafeNodes() int {
	n := 0
	for _, srv := range s.Servers() {
		if len(srv.Unsafe) > 0 {
			n++
		}
	}
	return n
}

// checkNodes reads the settings of every node, records them (Servers),
// logs each unsafe setting once when it appears and once when it is
// fixed, and returns an error naming the first unsafe node and setting.
func (s *Store) checkNodes(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		infos []ServerInfo
	)
	add := func(info ServerInfo) {
		mu.Lock()
		infos = append(infos, info)
		mu.Unlock()
	}
	if s.cluster != nil {
		err := s.cluster.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
			info, _, err := s.checkNode(ctx, c, c.Options().Addr)
			add(info)
			return err
		})
		if err != nil {
			return unavailable(err)
		}
	} else {
		c := s.rdb.(*redis.Client)
		addr := c.Options().Addr
		if s.kind == redisurl.Sentinel {
			addr = localAddr(ctx, c)
		}
		info, replicas, err := s.checkNode(ctx, c, addr)
		if err != nil {
			return unavailable(err)
		}
		add(info)
		for _, r := range replicas {
			rc := s.dialNode(r)
			info, _, err := s.checkNode(ctx, rc, r)
			_ = rc.Close()
			if err != nil {
				info.Unsafe = append(info.Unsafe, "not checked: "+err.Error()+
					" (mogate dials a replica at the address its primary lists: see replica-announce-ip)")
			}
			add(info)
		}
	}
	slices.SortFunc(infos, func(a, b ServerInfo) int { return strings.Compare(a.Addr, b.Addr) })
	s.serversMu.Lock()
	prev := s.servers
	s.servers = infos
	s.serversMu.Unlock()
	s.logChanges(prev, infos)
	for _, info := range infos {
		if len(info.Unsafe) > 0 {
			return fmt.Errorf("redisstore: %s %s: %s; mogate needs %s on every node, primaries and replicas "+
				"(or redis_unsafe: true to accept losing acknowledged writes)", info.Role, info.Addr, info.Unsafe[0], safeList())
		}
	}
	return nil
}

func safeList() string {
	var l []string
	for _, kv := range safeConfig {
		l = append(l, kv[0]+" "+kv[1])
	}
	return strings.Join(l, ", ")
}

// logChanges logs each unsafe setting of a node that the previous check
// did not report, and each that is gone.
func (s *Store) logChanges(prev, cur []ServerInfo) {
	set := func(infos []ServerInfo) map[[3]string]bool {
		m := map[[3]string]bool{}
		for _, i := range infos {
			for _, u := range i.Unsafe {
				m[[3]string{i.Addr, i.Role, u}] = true
			}
		}
		return m
	}
	before, now := set(prev), set(cur)
	for k := range now {
		if !before[k] {
			s.log.Warn("redis: unsafe node: acknowledged writes may be lost", "addr", k[0], "role", k[1], "setting", k[2], "redis_unsafe", s.opt.Unsafe)
		}
	}
	for k := range before {
		if !now[k] {
			s.log.Info("redis: node safe again", "addr", k[0], "role", k[1], "setting", k[2])
		}
	}
}

// checkNode reads one node's role, version and settings, and, for a
// primary, the addresses of its online replicas. Its error is a
// connection failure.
func (s *Store) checkNode(ctx context.Context, c *redis.Client, addr string) (ServerInfo, []string, error) {
	info := ServerInfo{Addr: addr, Role: "primary", Settings: map[string]string{}}
	text, err := c.Info(ctx, "server", "replication").Result()
	if err != nil {
		return info, nil, err
	}
	var replicas []string
	for line := range strings.Lines(text) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case k == "valkey_version":
			info.Version = "valkey " + v
		case k == "redis_version" && info.Version == "":
			info.Version = "redis " + v
		case k == "role" && v != "master":
			info.Role = "replica"
		case strings.HasPrefix(k, "slave") && strings.Contains(v, "state=online"):
			if r, ok := replicaAddr(v); ok {
				replicas = append(replicas, r)
			}
		}
	}
	if has, err := c.Do(ctx, "command", "info", "waitaof").Slice(); err == nil && (len(has) == 0 || has[0] == nil) {
		info.NoWaitAOF = true
	}
	for _, kv := range safeConfig {
		got, err := c.ConfigGet(ctx, kv[0]).Result()
		if err != nil {
			if isConnErr(err) {
				return info, nil, err
			}
			info.Unsafe = append(info.Unsafe, fmt.Sprintf("CONFIG GET failed (%v): managed Redis services often disable CONFIG; "+
				"make sure of %s, then set redis_unsafe: true", err, safeList()))
			break
		}
		v := got[kv[0]]
		info.Settings[kv[0]] = v
		if v != kv[1] {
			info.Unsafe = append(info.Unsafe, fmt.Sprintf("%s %s", kv[0], strconv.Quote(v)))
		}
	}
	return info, replicas, nil
}

// replicaAddr reads "ip=…,port=…,state=online,…" of INFO replication.
func replicaAddr(v string) (string, bool) {
	var ip, port string
	for f := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(f, "=")
		switch k {
		case "ip":
			ip = val
		case "port":
			port = val
		}
	}
	if ip == "" || port == "" {
		return "", false
	}
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + port, true
	}
	return ip + ":" + port, true
}

// localAddr is the node address a client's connection reached (CLIENT
// INFO laddr): the primary's, behind the Sentinels.
func localAddr(ctx context.Context, c *redis.Client) string {
	text, err := c.Do(ctx, "client", "info").Text()
	if err == nil {
		for f := range strings.FieldsSeq(text) {
			if v, ok := strings.CutPrefix(f, "laddr="); ok {
				return v
			}
		}
	}
	return "primary of " + c.Options().Addr
}

// checkWaitAOF refuses redis_wait_aof on a primary without WAITAOF.
func (s *Store) checkWaitAOF() error {
	if !s.opt.WaitAOF {
		return nil
	}
	for _, info := range s.Servers() {
		if info.Role == "primary" && info.NoWaitAOF {
			return fmt.Errorf("redisstore: redis_wait_aof needs WAITAOF (Redis >= 7.2, Valkey >= 8); %s runs %s", info.Addr, cmp.Or(info.Version, "a version without it"))
		}
	}
	return nil
}
