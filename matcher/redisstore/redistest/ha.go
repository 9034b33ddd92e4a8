package redistest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartReplica starts a server replicating primary (with the same safe
// settings; extra arguments override them) and waits until its link to
// the primary is up and the primary lists it online (the replica's side
// can be up a moment before the primary's).
func StartReplica(t testing.TB, primary *Server, extra ...string) *Server {
	t.Helper()
	r := Start(t, append([]string{"--replicaof", "127.0.0.1", fmt.Sprint(primary.Port)}, extra...)...)
	r.WaitLinkUp()
	c := redis.NewClient(&redis.Options{Addr: primary.Addr()})
	defer c.Close()
	want := fmt.Sprintf("port=%d,state=online", r.Port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, _ := c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, want) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("primary %s does not list replica %s online: %s", primary.Addr(), r.Addr(), info)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	t.Cleanup(s.logOnFailure)
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

// WaitKnows waits until the Sentinel knows the given numbers of other
// Sentinels and of replicas of master (they find each other through the
// primary every 2 s): before that a failover cannot reach its quorum.
func (s *Sentinel) WaitKnows(master string, sentinels, replicas int) {
	s.t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ss, err1 := c.Sentinels(ctx, master).Result()
		rs, err2 := c.Replicas(ctx, master).Result()
		if err1 == nil && err2 == nil && len(ss) >= sentinels && len(rs) >= replicas {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sentinel %s knows %d sentinels and %d replicas (%v %v), want %d and %d", s.Addr(), len(ss), len(rs), err1, err2, sentinels, replicas)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Master is the address the Sentinel names as master's primary now.
func (s *Sentinel) Master(master string) string {
	s.t.Helper()
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
	defer c.Close()
	a, err := c.GetMasterAddrByName(context.Background(), master).Result()
	if err != nil {
		return ""
	}
	return a[0] + ":" + a[1]
}

// Link is a TCP relay between a replica and its primary that can drop
// what the primary sends: replication lag a test controls.
type Link struct {
	Port int
	cut  atomic.Bool
	ln   net.Listener
}

// StartLaggingReplica starts a replica of primary that replicates through
// a Link.
func StartLaggingReplica(t testing.TB, primary *Server) (*Server, *Link) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{Port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	t.Cleanup(func() { ln.Close() })
	go l.serve(primary.Addr())
	r := Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(l.Port))
	r.WaitLinkUp()
	return r, l
}

func (l *Link) serve(target string) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			p, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer p.Close()
			go func() { _, _ = io.Copy(p, c); p.Close() }()
			buf := make([]byte, 32<<10)
			for {
				n, err := p.Read(buf)
				if n > 0 && !l.cut.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// Cut drops everything the primary sends from now on: the replica falls
// behind while the primary believes it sent the writes.
func (l *Link) Cut() { l.cut.Store(true) }
