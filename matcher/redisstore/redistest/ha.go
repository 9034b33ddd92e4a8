package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplica starts a server replicating primary (with the same safe
// settings; extra arguments override them) and waits until its link to
// the primary is up.
func StartReplica(t testing.TB, primary *Server, extra ...string) *Server {
	t.Helper()
	r := Start(t, append([]string{"--replicaof", "127.0.0.1", fmt.Sprint(primary.Port)}, extra...)...)
	r.WaitLinkUp()
	return r
}

// WaitLinkUp waits until the server, a replica, has its link to its
// primary up and the initial sync done.
func (s *Server) WaitLinkUp() {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") && !strings.Contains(info, "master_sync_in_progress:1") {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("replica %s: link to its primary not up: %s", s.Addr(), info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sentinel is one redis-sentinel process (redis-server --sentinel).
type Sentinel struct {
	*Server
}

// StartSentinel starts a Sentinel that monitors primary as master with the
// given quorum, declaring it down after downAfter without an answer.
func StartSentinel(t testing.TB, master string, primary *Server, quorum int, downAfter time.Duration) *Sentinel {
	t.Helper()
	bin := binary(t, "redis-server")
	port := sparePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
		"sentinel monitor %s 127.0.0.1 %d %d\n"+
		"sentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s 10000\n"+
		"sentinel parallel-syncs %s 1\n",
		port, dir, filepath.Join(dir, "redis.log"), master, primary.Port, quorum,
		master, downAfter.Milliseconds(), master, master)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Port: port, Dir: dir, args: []string{bin, conf, "--sentinel"}}
	s.start()
	t.Cleanup(s.Kill)
	return &Sentinel{s}
}

// Failover asks the Sentinel to promote a replica (SENTINEL FAILOVER),
// retrying while it does not know a good replica yet, and waits until it
// names another primary; it returns the new primary's address.
func (s *Sentinel) Failover(master string) string {
	s.t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	old, err := c.GetMasterAddrByName(ctx, master).Result()
	if err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.Failover(ctx, master).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		cur, err := c.GetMasterAddrByName(ctx, master).Result()
		if err == nil && cur[1] != old[1] {
			return cur[0] + ":" + cur[1]
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no new primary after SENTINEL FAILOVER: %v %v", cur, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SentinelURL is the redis+sentinel:// URL of the Sentinels for master.
func SentinelURL(master string, sentinels ...*Sentinel) string {
	var addrs []string
	for _, s := range sentinels {
		addrs = append(addrs, s.Addr())
	}
	return "redis+sentinel://" + strings.Join(addrs, ",") + "/" + master
}

// IsReplica reports whether the server is a replica now (ROLE).
func (s *Server) IsReplica() bool {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	role, err := c.Do(context.Background(), "role").Slice()
	if err != nil {
		s.t.Fatalf("ROLE on %s: %v", s.Addr(), err)
	}
	return role[0] == "slave"
}
