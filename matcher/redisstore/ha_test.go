package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// pipelines records the command names of each pipeline a client sends.
type pipelines struct {
	mu  sync.Mutex
	got [][]string
}

func (p *pipelines) record(cmds []redis.Cmder) {
	var names []string
	for _, c := range cmds {
		names = append(names, c.Name())
	}
	p.mu.Lock()
	p.got = append(p.got, names)
	p.mu.Unlock()
}

func (p *pipelines) has(want string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, names := range p.got {
		if strings.Join(names, " ") == want {
			return true
		}
	}
	return false
}

func create(ctx context.Context, s *redisstore.Store, i int) (matcher.Session, error) {
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1415556%04d", i), Code: "482913", To: storetest.To, TTL: time.Hour})
	return sess, err
}

// TestWaitReplicas: with WaitReplicas 1 a write returns only once the
// replica has it (WAIT in the same pipeline as the function call); with
// the replica frozen, every kind of write fails as unavailable within
// about the WAIT timeout, not the call timeout.
func TestWaitReplicas(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	o := options(primary.URL(), nil)
	// A WAIT timeout with room for a busy test machine; the call timeout
	// far above it, to tell which one a frozen replica runs into.
	o.WaitReplicas, o.WaitTimeout, o.Timeout = 1, time.Second, 10*time.Second
	s := open(t, o)
	ctx := context.Background()
	var p pipelines
	s.Client().AddHook(cmdHook{pipelines: true, before: p.record})

	sess, err := create(ctx, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !p.has("fcall wait") {
		t.Fatalf("no pipeline of FCALL and WAIT: %v", p.got)
	}
	// WAIT returned: the replica has the session now.
	if n, err := replica.Client().HExists(ctx, redisstore.SessionsKey(storetest.To), sess.ID).Result(); err != nil || !n {
		t.Fatalf("replica lacks the acknowledged session: %v %v", n, err)
	}

	unwaiting := open(t, options(primary.URL(), nil)) // opened while the replica answers
	replica.Stop()
	defer replica.Cont()
	for _, tc := range []struct {
		name  string
		write func() error
	}{
		{"create", func() error { _, err := create(ctx, s, 2); return err }},
		{"cancel", func() error { _, err := s.Cancel(ctx, sess.ID); return err }},
		{"nonce", func() error { _, err := s.SpendNonce(ctx, "twilio", "n1"); return err }},
		{"ingest", func() error {
			_, err := s.Ingest(ctx, matcher.Message{Provider: "twilio", MessageID: "m1", From: storetest.Alice, To: storetest.To, Text: "482913"}, matcher.IngestOptions{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := tc.write()
			if !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
				t.Fatalf("write with the replica frozen = %v, want unavailable (WAIT)", err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("took %s: bounded by the call timeout, not the WAIT timeout", took)
			}
		})
	}
	// A retry after such a 503 finds the write on the primary: it is not
	// acknowledged before the replicas have it either. (The session stands
	// on the primary alone as after a create whose WAIT failed; a store that
	// does not wait writes it.)
	req := matcher.CreateRequest{Key: "k", Number: "+14155559999", Code: "482913", To: storetest.To, TTL: time.Hour, IdemKey: "idem-1", ReqHash: "h"}
	if _, _, err := unwaiting.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		retry func() error
	}{
		{"create retried", func() error { _, _, err := s.Create(ctx, req); return err }},
		{"idempotent lookup", func() error { _, _, err := s.LookupIdempotent(ctx, "k", "idem-1"); return err }},
		{"message redelivered", func() error {
			_, err := s.Ingest(ctx, matcher.Message{Provider: "twilio", MessageID: "m1", From: storetest.Alice, To: storetest.To, Text: "482913"}, matcher.IngestOptions{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.retry(); !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
				t.Fatalf("replay with the replica frozen = %v, want unavailable (WAIT)", err)
			}
		})
	}
	// Reads need no replica.
	if _, err := s.Get(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	replica.Cont()
	again, replayed, err := s.Create(ctx, req)
	if err != nil || !replayed {
		t.Fatalf("create retried with the replica back = replayed %v, %v", replayed, err)
	}
	if n, err := replica.Client().HExists(ctx, redisstore.SessionsKey(storetest.To), again.ID).Result(); err != nil || !n {
		t.Fatalf("replica lacks the session acknowledged by the replay: %v %v", n, err)
	}
}

// TestWaitAOFRefused: WaitAOF on a server without WAITAOF is refused at
// Open, naming the server's version.
func TestWaitAOFRefused(t *testing.T) {
	srv := redistest.Start(t)
	if has, err := srv.Client().Do(context.Background(), "command", "info", "waitaof").Slice(); err == nil && len(has) > 0 && has[0] != nil {
		srv = redistest.Start(t, "--rename-command", "WAITAOF", "") // Redis >= 7.2: take it away
	}
	o := options(srv.URL(), nil)
	o.WaitAOF = true
	_, err := openStore(o)
	if err == nil || !strings.Contains(err.Error(), "WAITAOF") || !strings.Contains(err.Error(), "runs redis ") {
		t.Fatalf("Open with WaitAOF on a server without it = %v", err)
	}
}

// TestFailoverTopologiesNeedWait: Sentinel and Cluster without
// WaitReplicas are refused unless Unsafe, before anything connects.
func TestFailoverTopologiesNeedWait(t *testing.T) {
	for _, url := range []string{"redis+sentinel://127.0.0.1:1/m", "redis://127.0.0.1:1,redis://127.0.0.1:2"} {
		o := options(url, nil)
		_, err := openStore(o)
		if err == nil || !strings.Contains(err.Error(), "redis_wait_replicas") {
			t.Fatalf("Open(%s) without WaitReplicas = %v", url, err)
		}
	}
}

// TestReadyFailsOnReplica: a store whose node is made a replica (as
// Sentinel does to a primary that comes back) is not ready, naming why,
// and its writes fail as unavailable.
func TestReadyFailsOnReplica(t *testing.T) {
	other := redistest.Start(t)
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	ctx := context.Background()
	if err := s.Err(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().SlaveOf(ctx, "127.0.0.1", fmt.Sprint(other.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	srv.WaitLinkUp()
	if err := s.Err(ctx); !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "not a primary") {
		t.Fatalf("Err on a replica = %v", err)
	}
	if _, err := create(ctx, s, 1); !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("create on a replica = %v", err)
	}
}

// TestReplicaSettingsChecked: a replica that can lose acknowledged writes
// (it may be promoted) is refused at Open, naming it and the setting;
// with Unsafe it is counted, and the count follows a fix.
func TestReplicaSettingsChecked(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary, "--appendfsync", "everysec")
	o := options(primary.URL(), nil)
	_, err := openStore(o)
	if err == nil || !strings.Contains(err.Error(), "replica "+replica.Addr()) || !strings.Contains(err.Error(), `appendfsync "everysec"`) {
		t.Fatalf("Open with an unsafe replica = %v", err)
	}
	o.Unsafe = true
	s := open(t, o)
	if n := s.UnsafeNodes(); n != 1 {
		t.Fatalf("UnsafeNodes = %d, want 1 (%+v)", n, s.Servers())
	}
	var roles []string
	for _, srv := range s.Servers() {
		roles = append(roles, srv.Addr+" "+srv.Role)
	}
	if len(roles) != 2 || !strings.Contains(strings.Join(roles, ","), replica.Addr()+" replica") {
		t.Fatalf("Servers = %v", roles)
	}
	ctx := context.Background()
	if err := replica.Client().ConfigSet(ctx, "appendfsync", "always").Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckNodes(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.UnsafeNodes(); n != 0 {
		t.Fatalf("UnsafeNodes after the fix = %d", n)
	}
}

// TestSentinel: a store on redis+sentinel:// writes to the primary the
// Sentinel names, and follows a failover without a restart: the
// acknowledged session is still there, new writes go to the new primary,
// and the old one (a replica now) is never written to.
func TestSentinel(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	sen := redistest.StartSentinel(t, "mymaster", primary, 1, 5*time.Second) // failover by hand; 5 s keeps a stalled Sentinel from adding its own
	o := options(redistest.SentinelURL("mymaster", sen), nil)
	o.WaitReplicas, o.WaitTimeout = 1, time.Second
	s := open(t, o)
	ctx := context.Background()
	first, err := create(ctx, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if addr := sen.Failover("mymaster"); addr != replica.Addr() {
		t.Fatalf("new primary %s, want %s", addr, replica.Addr())
	}
	// The old primary becomes a replica of the new one; once it is, WAIT
	// is met again and writes resume.
	var second matcher.Session
	deadline := time.Now().Add(20 * time.Second)
	for {
		if second, err = create(ctx, s, 2); err == nil {
			break
		}
		if !errors.Is(err, matcher.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("create after the failover = %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, sess := range []matcher.Session{first, second} {
		if _, err := s.Get(ctx, sess.ID); err != nil {
			t.Fatalf("Get %s after the failover: %v", sess.ID, err)
		}
		if ok, err := replica.Client().HExists(ctx, redisstore.SessionsKey(storetest.To), sess.ID).Result(); err != nil || !ok {
			t.Fatalf("new primary lacks %s: %v %v", sess.ID, ok, err)
		}
	}
	role, err := primary.Client().Do(ctx, "role").Slice()
	if err != nil || role[0] != "slave" {
		t.Fatalf("old primary's ROLE = %v %v", role, err)
	}
	if err := s.Err(ctx); err != nil {
		t.Fatalf("Err after the failover: %v", err)
	}
}

// TestWaitReplicasCluster: on Cluster, the WAIT goes to the primary that
// took the write: a create returns once its slot's replica has it, and
// fails as unavailable while the replicas are frozen.
func TestWaitReplicasCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := redistest.StartClusterReplicas(t, 3, 1)
	o := options(c.URL(), nil)
	o.WaitReplicas, o.WaitTimeout = 1, time.Second
	s := open(t, o)
	ctx := context.Background()
	sess, err := create(ctx, s, 1)
	if err != nil {
		t.Fatal(err)
	}
	var replicas []*redistest.Server
	found := false
	for _, srv := range c.Servers {
		if !srv.IsReplica() {
			continue
		}
		replicas = append(replicas, srv)
		cn := srv.Client().Conn() // READONLY holds for one connection
		cn.ReadOnly(ctx)
		if ok, _ := cn.HExists(ctx, redisstore.SessionsKey(storetest.To), sess.ID).Result(); ok {
			found = true
		}
		cn.Close()
	}
	if !found {
		t.Fatal("no replica has the acknowledged session")
	}
	for _, r := range replicas {
		r.Stop()
		defer r.Cont()
	}
	if _, err := create(ctx, s, 2); !errors.Is(err, matcher.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("create with the replicas frozen = %v", err)
	}
}
