package redisstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func options(url string, clock func() time.Time) redisstore.Options {
	return redisstore.Options{
		URL: url, Now: clock, MaxAttempts: storetest.MaxAttempts, CodeLength: storetest.CodeLength,
		Retention: storetest.Retention, CaptureGuessesPerHour: storetest.CaptureGuessesPerHour, Logger: quiet,
	}
}

// fakeOptions are options for a store on a fake clock, which Redis's
// TIME does not correct.
func fakeOptions(url string, clock func() time.Time) redisstore.Options {
	o := options(url, clock)
	o.LocalClock = true
	return o
}

func open(t *testing.T, o redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := openStore(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openStore(o redisstore.Options) (*redisstore.Store, error) {
	return redisstore.Open(context.Background(), o)
}

// TestStore runs the store suite on one private Redis.
func TestStore(t *testing.T) {
	srv := redistest.Start(t)
	rc := srv.Client()
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		if err := rc.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return open(t, fakeOptions(srv.URL(), clock))
	})
}

// TestStoreCluster runs the store suite on a Redis Cluster of three
// primaries, with a redis_prefix of two segments: every call's keys still
// share one slot (a cross-slot call fails there).
func TestStoreCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := redistest.StartCluster(t, 3)
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		c.FlushAll(t)
		o := fakeOptions(c.URL(), clock)
		o.Prefix = "mogate-staging:eu"
		o.Unsafe = true // primaries without replicas: nothing to WAIT for
		return open(t, o)
	})
}

// TestRefusesUnsafeSettings: persistence that can lose acknowledged writes
// is refused at Open, naming the setting, unless Unsafe.
func TestRefusesUnsafeSettings(t *testing.T) {
	cases := []struct {
		args    []string
		setting string
	}{
		{[]string{"--appendonly", "no"}, "appendonly"},
		{[]string{"--appendfsync", "everysec"}, "appendfsync"},
		{[]string{"--maxmemory-policy", "allkeys-lru"}, "maxmemory-policy"},
	}
	for _, tc := range cases {
		t.Run(tc.setting, func(t *testing.T) {
			srv := redistest.Start(t, tc.args...)
			o := options(srv.URL(), nil)
			_, err := redisstore.Open(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.setting) || !strings.Contains(err.Error(), "redis_unsafe") {
				t.Fatalf("Open = %v, want a refusal naming %s", err, tc.setting)
			}
			o.Unsafe = true
			s := open(t, o)
			s.Close()
		})
	}
	// CONFIG renamed away, as managed services do: the error says so.
	srv := redistest.Start(t, "--rename-command", "CONFIG", "")
	_, err := redisstore.Open(context.Background(), options(srv.URL(), nil))
	if err == nil || !strings.Contains(err.Error(), "CONFIG") || !strings.Contains(err.Error(), "redis_unsafe") {
		t.Fatalf("Open without CONFIG = %v", err)
	}
	o := options(srv.URL(), nil)
	o.Unsafe = true
	open(t, o).Close()
}

// TestRedisRestart: while Redis is down every call fails with
// ErrUnavailable; after it restarts from its AOF the same store works
// again, with nothing acknowledged lost, and a lost function library is
// loaded again.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	o := options(srv.URL(), nil)
	o.Timeout = time.Second
	s := open(t, o)
	defer s.Close()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	if _, err := s.Get(ctx, sess.ID); !errors.Is(err, matcher.ErrUnavailable) {
		t.Fatalf("Get with Redis down = %v", err)
	}
	msg := matcher.Message{Provider: "tw", MessageID: "m1", From: storetest.Alice, To: storetest.To, Text: "482913"}
	if _, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); !errors.Is(err, matcher.ErrUnavailable) {
		t.Fatalf("Ingest with Redis down = %v", err)
	}
	if err := s.Err(ctx); !errors.Is(err, matcher.ErrUnavailable) {
		t.Fatalf("Err with Redis down = %v", err)
	}
	srv.Restart()
	waitUp(t, s)
	if got, err := s.Get(ctx, sess.ID); err != nil || got.Status != matcher.Pending {
		t.Fatalf("after the restart: %+v %v", got, err)
	}
	// The function library is gone (a failover to a node without it): the
	// next call loads it again.
	if err := srv.Client().FunctionFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
		t.Fatalf("Ingest after the restart = %+v %v", o, err)
	}
	// Wakeups recover too: another replica's change reaches this one's
	// Events() (its subscription reconnected by itself).
	other := open(t, o)
	defer other.Close()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		for len(s.Events()) > 0 {
			<-s.Events()
		}
		m := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("u", i), From: storetest.Mallet, To: storetest.To, Text: "hi"}
		if _, err := other.Ingest(ctx, m, matcher.IngestOptions{UnmatchedKeys: []string{"k"}}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-s.Events():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("wakeups did not recover within 15 s")
		}
	}
}

func waitUp(t *testing.T, s *redisstore.Store) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for s.Err(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store did not recover within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedisStalled: a frozen Redis makes calls fail with ErrUnavailable
// within the timeout, never hang and never succeed.
func TestRedisStalled(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	o := options(srv.URL(), nil)
	o.Timeout = 500 * time.Millisecond
	s := open(t, o)
	defer s.Close()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	defer srv.Cont()
	calls := map[string]func() error{
		"Get": func() error { _, err := s.Get(ctx, sess.ID); return err },
		"Create": func() error {
			_, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Mallet, To: storetest.To, TTL: time.Hour})
			return err
		},
		"Ingest": func() error {
			_, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: "m1", From: storetest.Alice, To: storetest.To, Text: "482913"}, matcher.IngestOptions{})
			return err
		},
		"SpendNonce":  func() error { _, err := s.SpendNonce(ctx, "p", "n"); return err },
		"ClaimEvents": func() error { _, err := s.ClaimEvents(ctx, time.Second, 10); return err },
		"Err":         func() error { return s.Err(ctx) },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if took := time.Since(start); took > 3*o.Timeout {
			t.Errorf("%s took %v with Redis frozen", name, took)
		}
		if !errors.Is(err, matcher.ErrUnavailable) {
			t.Errorf("%s with Redis frozen = %v, want ErrUnavailable", name, err)
		}
	}
	srv.Cont()
	waitUp(t, s)
	// Commands sent while it was frozen may run now: what they did is the
	// provider's retry's to find (dedupe), never a 2xx given meanwhile.
	if _, err := s.Get(ctx, sess.ID); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}

// TestBadURLKeepsPassword: a redis_url that does not parse is refused
// without quoting it (it may hold a password).
func TestBadURLKeepsPassword(t *testing.T) {
	for _, u := range []string{"redis://u:s3cret@127.0.0.1:6379/%zz", "http://u:s3cret@host", "redis://a:1,redis://u:s3cret@b:%zz",
		"redis://:s3c\"ret@host:6379", "redis://:s3cret\x01@host:6379", "redis://:p%zzs3cret@host:6379"} {
		_, err := redisstore.Open(context.Background(), redisstore.Options{URL: u, Logger: quiet})
		if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "s3c") {
			t.Errorf("Open(%q) = %v", u, err)
		}
	}
}

// TestKilledRedisLosesNothingAcknowledged: Redis is killed with -9 under
// load; after it restarts from its AOF every acknowledged create and match
// is there.
func TestKilledRedisLosesNothingAcknowledged(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	o := options(srv.URL(), nil)
	o.Timeout = time.Second
	s := open(t, o)
	type done struct {
		id      string
		matched bool
	}
	var mu sync.Mutex
	var acked []done
	var failed atomic.Int32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := fmt.Sprintf("+1415%03d%04d", g, i%10000)
				sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: from, Code: "4242", To: storetest.To, TTL: time.Hour})
				if err != nil {
					failed.Add(1)
					time.Sleep(10 * time.Millisecond)
					continue
				}
				d := done{id: sess.ID}
				msg := matcher.Message{Provider: "tw", MessageID: sess.ID, From: from, To: storetest.To, Text: "4242"}
				if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err == nil && o.Kind == matcher.Matched {
					d.matched = true
				}
				mu.Lock()
				acked = append(acked, d)
				mu.Unlock()
			}
		}()
	}
	matches := func() (creates, matched int) {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range acked {
			if d.matched {
				matched++
			}
		}
		return len(acked), matched
	}
	waitWithin(t, 20*time.Second, "10 matches before the kill", func() bool { _, m := matches(); return m >= 10 })
	srv.Kill()
	down := failed.Load()
	waitWithin(t, 20*time.Second, "creates failing while Redis is down", func() bool { return failed.Load() >= down+4 })
	srv.Restart()
	before, _ := matches()
	waitWithin(t, 20*time.Second, "creates after the restart", func() bool { n, _ := matches(); return n >= before+10 })
	halt()
	waitUp(t, s)
	matched := 0
	for _, d := range acked {
		got, err := s.Get(ctx, d.id)
		if err != nil {
			t.Fatalf("acknowledged session %s lost: %v", d.id, err)
		}
		if d.matched {
			matched++
			if got.Status != matcher.Verified {
				t.Fatalf("acknowledged match of %s lost: %+v", d.id, got)
			}
		}
	}
	if len(acked) < 10 || matched < 10 {
		t.Fatalf("only %d creates, %d matches acknowledged", len(acked), matched)
	}
	t.Logf("%d creates and %d matches acknowledged, none lost", len(acked), matched)
}

// TestUndeliveredEventOutlivesRetention: the retention sweep drops a
// finished session only once its event is delivered or dead; before, an
// event still being retried vanished with its session.
func TestUndeliveredEventOutlivesRetention(t *testing.T) {
	srv := redistest.Start(t)
	c := &storetest.Clock{}
	c.Add(time.Duration(time.Now().UnixNano()))
	o := fakeOptions(srv.URL(), c.Now)
	o.Retention = time.Minute
	s := open(t, o)
	ctx := context.Background()
	v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: "+14155550100", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("claim = %+v %v", evs, err)
	}
	evs[0].Attempts = 4
	if err := s.DeferEvent(ctx, evs[0], c.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	c.Add(90 * time.Second) // past the retention, before the next try
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Minute)
	again, err := s.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(again) != 1 || again[0].ID != evs[0].ID || again[0].Attempts != 4 {
		t.Fatalf("after the retention sweep: %+v %v", again, err)
	}
	if err := s.AckEvent(ctx, again[0], false); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, v.ID); !errors.Is(err, matcher.ErrNotFound) {
		t.Fatalf("delivered session kept past the retention: %v", err)
	}
	keys, _ := srv.Client().Keys(ctx, "mogate:*:e").Result()
	for _, k := range keys {
		if n, _ := srv.Client().HLen(ctx, k).Result(); n != 0 {
			t.Fatalf("%s still holds %d fields", k, n)
		}
	}
}

// onFakeClock is a store on a private Redis and a fake clock set to now.
func onFakeClock(t *testing.T) (*redistest.Server, *storetest.Clock, *redisstore.Store) {
	t.Helper()
	srv := redistest.Start(t)
	c := &storetest.Clock{}
	c.Add(time.Duration(time.Now().UnixNano()))
	return srv, c, open(t, fakeOptions(srv.URL(), c.Now))
}

// TestAckRewritesNotifiedInPlace: an ack sets a record's "nt":0 to the
// event's state in the record's text, everything else byte for byte
// (decoding and encoding it in Lua would reorder its fields); a record of
// another shape (no "nt", a state already set, "nt" text inside a string)
// is decoded and encoded, and reads back with its state and every other
// field as before.
func TestAckRewritesNotifiedInPlace(t *testing.T) {
	srv, _, s := onFakeClock(t)
	ctx := context.Background()
	rdb := srv.Client()
	hash := redisstore.SessionsKey(storetest.To)
	sender := 0
	finished := func() (matcher.Session, string) {
		t.Helper()
		sender++
		v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1628555%04d", sender), To: storetest.To, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cancel(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got, rdb.HGet(ctx, hash, v.ID).Val()
	}
	ack := func(sess matcher.Session, dead bool) (matcher.Session, string) {
		t.Helper()
		ev := matcher.Event{ID: matcher.EventID(sess.ID, sess.Status), Key: sess.Key, Session: &sess}
		if err := s.AckEvents(ctx, []matcher.Event{ev}, dead); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got, rdb.HGet(ctx, hash, sess.ID).Val()
	}
	same := func(what string, got, before matcher.Session, want matcher.Notified) {
		t.Helper()
		if got.Notified != want {
			t.Errorf("%s: notified %v, want %v", what, got.Notified, want)
		}
		got.Notified = before.Notified
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", before) {
			t.Errorf("%s: the ack changed more than the notified state:\n got %+v\nwant %+v", what, got, before)
		}
	}

	for _, dead := range []bool{false, true} {
		before, rec := finished()
		if !strings.Contains(rec, `"nt":0`) {
			t.Fatalf("a finished session's record has no \"nt\":0: %s", rec)
		}
		want, state := matcher.Delivered, `"nt":1`
		if dead {
			want, state = matcher.Dead, `"nt":2`
		}
		got, after := ack(before, dead)
		if wantRec := strings.Replace(rec, `"nt":0`, state, 1); after != wantRec {
			t.Errorf("record after the ack (dead %v):\n%s\nwant the record with %s in place:\n%s", dead, after, state, wantRec)
		}
		same(fmt.Sprintf("ack (dead %v)", dead), got, before, want)
	}

	// A state already set: acked again, as dead.
	before, _ := finished()
	ack(before, false)
	got, _ := ack(before, true)
	same("a second ack", got, before, matcher.Dead)

	// Shapes the text rewrite must leave to the decoder.
	for name, edit := range map[string]func(map[string]any){
		"no nt": func(m map[string]any) { delete(m, "nt") },
		"nt text in strings before the key": func(m map[string]any) {
			m["cb"] = `https://app.example/x?"nt":0,"st":4`
			m["lang"] = `"nt":0}`
		},
	} {
		before, rec := finished()
		var m map[string]any
		if err := json.Unmarshal([]byte(rec), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		raw, _ := json.Marshal(m)
		if err := rdb.HSet(ctx, hash, before.ID, raw).Err(); err != nil {
			t.Fatal(err)
		}
		before, err := s.Get(ctx, before.ID)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := ack(before, false)
		same(name, got, before, matcher.Delivered)
	}
}

// TestUndeliveredCounts: every event not yet acked counts, in every
// tag, whether due, leased or deferred; an ack takes it out.
func TestUndeliveredCounts(t *testing.T) {
	srv, c, s := onFakeClock(t)
	ctx := context.Background()
	count := func(want int) {
		t.Helper()
		if n, err := s.Undelivered(ctx); err != nil || n != want {
			t.Fatalf("Undelivered = %d, %v; want %d", n, err, want)
		}
	}
	count(0)
	for _, to := range []string{"+14155550100", "+14155550101", "+14155550102"} { // three tags
		v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: to, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Cancel(ctx, v.ID); err != nil {
			t.Fatal(err)
		}
	}
	count(3)
	evs, err := s.ClaimEvents(ctx, 30*time.Second, 2)
	if err != nil || len(evs) != 2 {
		t.Fatalf("claim = %+v %v", evs, err)
	}
	count(3) // leased
	if err := s.DeferEvent(ctx, evs[0], c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	count(3) // deferred
	if err := s.AckEvent(ctx, evs[1], false); err != nil {
		t.Fatal(err)
	}
	count(2)
	srv.Kill()
	if _, err := s.Undelivered(ctx); err == nil {
		t.Fatal("Undelivered answered with Redis gone")
	}
}

// TestAckEventsBatched: a claim leases its events with one command per
// number, and the store acks them in batches (the outbox's
// EventBatchAcker): one function call per tag and per ackBatch events, each event then acked as AckEvent acks it: never claimed
// again, its session's notified state recorded.
func TestAckEventsBatched(t *testing.T) {
	srv, c, s := onFakeClock(t)
	ctx := context.Background()
	b, ok := matcher.Store(s).(matcher.EventBatchAcker)
	if !ok {
		t.Fatal("the Redis store does not ack in batches")
	}
	// 4 calls and 4 events on one number (five calls), 2 and 1 on two more.
	perNumber := map[string]int{"+14155550100": 4*redisstore.AckBatch + 4, "+14155550101": 2, "+14155550102": 1}
	total, calls := 4*redisstore.AckBatch+7, 7
	sender := 0
	for to, n := range perNumber {
		for range n {
			sender++
			v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1628555%04d", sender), To: to, TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Cancel(ctx, v.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	beforeClaim := commandCalls(t, srv.Client())
	evs, err := s.ClaimEvents(ctx, 30*time.Second, 1000)
	if err != nil || len(evs) != total {
		t.Fatalf("claim = %d events, %v", len(evs), err)
	}
	// A claim leases its events with one ZADD per number and reads them
	// with two HMGETs (records, attempts), not a command or two each.
	afterClaim := commandCalls(t, srv.Client())
	for cmd, want := range map[string]int{"zadd": 3, "hmget": 6, "hget": 0} {
		if n := afterClaim[cmd] - beforeClaim[cmd]; n != want {
			t.Errorf("%d %s commands to claim %d events on 3 numbers, want %d", n, cmd, total, want)
		}
	}
	var alive, dead []matcher.Event
	for _, ev := range evs {
		if ev.Session.To == "+14155550102" {
			dead = append(dead, ev)
		} else {
			alive = append(alive, ev)
		}
	}
	before := commandCalls(t, srv.Client())
	if err := b.AckEvents(ctx, alive, false); err != nil {
		t.Fatal(err)
	}
	if err := b.AckEvents(ctx, dead, true); err != nil {
		t.Fatal(err)
	}
	after := commandCalls(t, srv.Client())
	for _, cmd := range []string{"fcall", "zrem", "hdel", "hmget", "hset"} {
		if n := after[cmd] - before[cmd]; n != calls {
			t.Errorf("%d %s commands for %d acks on 3 numbers, want %d (one per call)", n, cmd, total, calls)
		}
	}
	if n, err := s.Undelivered(ctx); err != nil || n != 0 {
		t.Fatalf("Undelivered = %d, %v after the acks", n, err)
	}
	for _, ev := range evs {
		got, err := s.Get(ctx, ev.Session.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := matcher.Delivered
		if ev.Session.To == "+14155550102" {
			want = matcher.Dead
		}
		if got.Notified != want || got.Status != matcher.Cancelled {
			t.Fatalf("session %s on %s: notified %v, status %v after its ack; want %v, cancelled", got.ID, got.To, got.Notified, got.Status, want)
		}
	}
	c.Add(time.Minute) // past every lease
	if again, err := s.ClaimEvents(ctx, 30*time.Second, 1000); err != nil || len(again) != 0 {
		t.Fatalf("claimed again after AckEvents: %d events, %v", len(again), err)
	}
	srv.Kill()
	if err := b.AckEvents(ctx, alive[:1], false); err == nil {
		t.Fatal("AckEvents succeeded with Redis gone")
	}
}

// TestClaimMixedEvents: a claim of session events and message.unmatched
// events together reads each one's record and its own failed attempts
// (two commands for the whole claim: TestAckEventsBatched).
func TestClaimMixedEvents(t *testing.T) {
	_, c, s := onFakeClock(t)
	ctx := context.Background()
	const to = "+14155550100"
	v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k1", Number: storetest.Alice, To: to, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cancel(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: "+16285550199", To: to, Text: "hello"}
	if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{UnmatchedKeys: []string{"k1", "k2"}}); err != nil || o.Kind != matcher.Unmatched {
		t.Fatalf("ingest = %+v, %v", o, err)
	}
	evs, err := s.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(evs) != 3 {
		t.Fatalf("claim = %+v, %v", evs, err)
	}
	// Each handed back with attempts of its own: 1, 2, 3.
	want := map[string]int{}
	for i, ev := range evs {
		ev.Attempts = i + 1
		want[ev.ID] = i + 1
		if err := s.DeferEvent(ctx, ev, c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	again, err := s.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(again) != 3 {
		t.Fatalf("claim again = %+v, %v", again, err)
	}
	sessions := 0
	for _, ev := range again {
		if ev.Attempts != want[ev.ID] {
			t.Errorf("event %s: %d attempts, want %d", ev.ID, ev.Attempts, want[ev.ID])
		}
		switch {
		case ev.Session != nil:
			sessions++
			if ev.Session.ID != v.ID || ev.Type() != "verification.cancelled" {
				t.Errorf("session event %+v", ev)
			}
		case ev.Unmatched == nil || ev.Unmatched.Message.Text != "hello" || ev.ID != matcher.UnmatchedEventID("tw", "SM1", ev.Key):
			t.Errorf("unmatched event %+v", ev)
		}
	}
	if sessions != 1 {
		t.Fatalf("%d session events in %+v, want 1", sessions, again)
	}
}

// TestPoolNumbersListed: the pool's numbers are listed in mogate:tags at
// Open, before any write to them, so a quiet number whose entry a failover
// lost is still swept and its events claimed.
func TestPoolNumbersListed(t *testing.T) {
	srv := redistest.Start(t)
	o := options(srv.URL(), nil)
	o.Numbers = []string{"+14155550100", "+447700900123"}
	s := open(t, o)
	ctx := context.Background()
	tags, err := srv.Client().SMembers(ctx, "mogate:tags").Result()
	if err != nil || len(tags) != 2 {
		t.Fatalf("tags after Open = %v %v", tags, err)
	}
	// A session on the first number expires through the sweeper although
	// the tag set was emptied, as a failover might.
	v, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: "+14155550100", TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().Del(ctx, "mogate:tags").Err(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, o) // another replica starting lists the pool again
	time.Sleep(1100 * time.Millisecond)
	if err := s2.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := s2.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(evs) != 1 || evs[0].Session.ID != v.ID || evs[0].Session.Status != matcher.Expired {
		t.Fatalf("expired event after the tag set was lost: %+v %v", evs, err)
	}
}
