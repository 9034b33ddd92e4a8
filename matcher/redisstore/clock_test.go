package redisstore_test

import (
	"bytes"
	"context"
	"encoding/json"
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

// lockedBuffer is a log destination safe for the store's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// lines are the JSON log records written so far.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for l := range strings.Lines(b.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// skewLines are the records that mention the clock's skew.
func skewLines(t *testing.T, b *lockedBuffer) []map[string]any {
	var out []map[string]any
	for _, m := range b.lines(t) {
		if _, ok := m["skew_seconds"]; ok {
			out = append(out, m)
		}
	}
	return out
}

// redisNow is the Redis server's TIME.
func redisNow(t *testing.T, srv *redistest.Server) time.Time {
	t.Helper()
	now, err := srv.Client().Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

func near(a, b time.Time, d time.Duration) bool { return a.Sub(b).Abs() <= d }

// TestClockFromRedis: a replica whose clock runs 15 min fast expires no
// other replica's session, reads a new 10-minute session as pending, sets
// expires_at from Redis's time, takes over no leased event, and measures
// and logs its skew.
func TestClockFromRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	normal := open(t, options(srv.URL(), nil))
	logs := &lockedBuffer{}
	o := options(srv.URL(), func() time.Time { return time.Now().Add(15 * time.Minute) })
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	fast := open(t, o)

	sess, _, err := normal.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := fast.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*redisstore.Store{"normal": normal, "fast": fast} {
		got, err := s.Get(ctx, sess.ID)
		if err != nil || got.Status != matcher.Pending || !got.ExpiresAt.Equal(sess.ExpiresAt) {
			t.Fatalf("%s reads %v expiring %v (%v), want pending expiring %v", name, got.Status, got.ExpiresAt, err, sess.ExpiresAt)
		}
	}

	before := redisNow(t, srv)
	own, _, err := fast.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Mallet, To: storetest.To2, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if want := before.Add(10 * time.Minute); !near(own.ExpiresAt, want, 2*time.Second) {
		t.Errorf("fast's session expires at %v, want Redis time + 10 min, about %v", own.ExpiresAt, want)
	}
	if got, err := normal.Get(ctx, own.ID); err != nil || got.Status != matcher.Pending {
		t.Errorf("normal reads fast's session as %v (%v)", got.Status, err)
	}

	// An event leased by normal stays normal's until the lease ends.
	if _, err := normal.Cancel(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if evs, err := normal.ClaimEvents(ctx, time.Minute, 10); err != nil || len(evs) != 1 {
		t.Fatalf("normal claims %+v %v", evs, err)
	}
	if evs, err := fast.ClaimEvents(ctx, time.Minute, 10); err != nil || len(evs) != 0 {
		t.Fatalf("fast took over a leased event: %+v %v", evs, err)
	}

	if skew := fast.ClockSkew(); (skew - 15*time.Minute).Abs() > time.Second {
		t.Errorf("fast's skew = %v, want about 15m", skew)
	}
	if skew := normal.ClockSkew(); skew.Abs() > time.Second {
		t.Errorf("normal's skew = %v, want about 0", skew)
	}
	if !near(fast.Now(), redisNow(t, srv), time.Second) {
		t.Errorf("fast.Now() = %v, Redis's TIME %v", fast.Now(), redisNow(t, srv))
	}
	lines := skewLines(t, logs)
	if len(lines) != 1 || lines[0]["level"] != "WARN" {
		t.Fatalf("skew log lines = %v, want one warning", lines)
	}
	if s, _ := lines[0]["skew_seconds"].(float64); s < 899 || s > 901 {
		t.Errorf("logged skew_seconds = %v, want about 900", s)
	}
}

// TestClockResync: Run samples Redis's TIME again, so a local clock that
// jumps changes nothing after the next sample; the skew is logged once
// when it passes 2 s and once when it is back.
func TestClockResync(t *testing.T) {
	defer redisstore.SetClockSyncEvery(10 * time.Millisecond)()
	srv := redistest.Start(t)
	var jump atomic.Int64
	logs := &lockedBuffer{}
	o := options(srv.URL(), func() time.Time { return time.Now().Add(time.Duration(jump.Load())) })
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	s := open(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	settle := func(want time.Duration) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for (s.ClockSkew()-want).Abs() > time.Second || !near(s.Now(), redisNow(t, srv), time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("skew %v, Now %v vs Redis %v; want skew about %v", s.ClockSkew(), s.Now(), redisNow(t, srv), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	jump.Store(int64(-time.Hour))
	settle(-time.Hour)
	time.Sleep(100 * time.Millisecond) // several samples past 2 s: still one line
	jump.Store(0)
	settle(0)
	// The offset is stored before its line is logged.
	waitFor(t, "the line of the skew back", func() bool { return len(skewLines(t, logs)) >= 2 })
	lines := skewLines(t, logs)
	if len(lines) != 2 || lines[0]["level"] != "WARN" || lines[1]["level"] != "INFO" {
		t.Fatalf("skew log lines = %v, want a warning then an info line", lines)
	}
}

// TestClockFromRedisCluster: in a cluster, the offset is measured too.
func TestClockFromRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := redistest.StartCluster(t, 3)
	o := options(c.URL(), func() time.Time { return time.Now().Add(-15 * time.Minute) })
	o.Unsafe = true // primaries without replicas: nothing to WAIT for
	s := open(t, o)
	if skew := s.ClockSkew(); (skew + 15*time.Minute).Abs() > time.Second {
		t.Errorf("skew = %v, want about -15m", skew)
	}
	if !near(s.Now(), time.Now(), time.Second) {
		t.Errorf("Now() = %v, want about %v", s.Now(), time.Now())
	}
}
