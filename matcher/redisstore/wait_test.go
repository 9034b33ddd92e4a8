package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/redis/go-redis/v9"
)

// readCounter counts the session reads (HGET) a store sends.
func readCounter(s *redisstore.Store) *atomic.Int64 {
	var n atomic.Int64
	s.Client().AddHook(&calls{byName: func(name string) {
		if name == "hget" {
			n.Add(1)
		}
	}})
	return &n
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 5*time.Second, what, cond)
}

// waitWithin polls cond until it holds or within passes.
func waitWithin(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIdleWaitsCostNoReads: open waits on pending sessions send no Redis
// command while nothing happens; a match on another store still wakes
// them at once.
func TestIdleWaitsCostNoReads(t *testing.T) {
	srv := redistest.Start(t)
	a := open(t, options(srv.URL(), time.Now))
	b := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	const n = 20
	var sessions []matcher.Session
	for i := range n {
		v, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1415555%04d", 2000+i), Code: "123456", To: "+14155550100", TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, v)
	}
	reads := readCounter(a)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]chan matcher.Session, n)
	var wg sync.WaitGroup
	for i, v := range sessions {
		results[i] = make(chan matcher.Session, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _ := a.Wait(wctx, v.ID)
			results[i] <- got
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	waitFor(t, "the waits' first reads", func() bool { return reads.Load() >= n })
	before := reads.Load()
	time.Sleep(3 * time.Second) // the window measured, not a synchronisation
	if got := reads.Load() - before; got >= n/2 {
		t.Errorf("%d idle waits read their session %d times in 3 s, want (almost) none", n, got)
	}

	// A match on b wakes the wait on a, long before any fallback re-read.
	m := matcher.Message{Provider: "p", MessageID: "m1", From: sessions[0].Number, To: "+14155550100", Text: "123456"}
	if o, err := b.Ingest(ctx, m, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
		t.Fatalf("ingest on b = %+v, %v", o, err)
	}
	select {
	case got := <-results[0]:
		if got.Status != matcher.Verified {
			t.Fatalf("woken wait = %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the match on b did not wake the wait on a")
	}
}

// TestWaitWokenAfterResubscribe: a change whose wakeup was lost while the
// subscription was down is read as soon as it is re-established, not at
// the next fallback re-read.
func TestWaitWokenAfterResubscribe(t *testing.T) {
	defer redisstore.SetWaitFallback(time.Minute)()
	srv := redistest.Start(t)
	a := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	v, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: "+14155550123", Code: "123456", To: "+14155550100", TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	reads := readCounter(a)
	done := make(chan matcher.Session, 1)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ := a.Wait(wctx, v.ID)
		done <- got
	}()
	defer func() { cancel(); wg.Wait() }() // before the fallback is restored
	waitFor(t, "the wait's first read", func() bool { return reads.Load() >= 1 })

	// The session is cancelled behind the store's back (no wakeup is
	// published), then the subscription drops and comes back.
	rc := srv.Client()
	defer rc.Close()
	const cancelled = `local j = cjson.decode(redis.call('HGET', KEYS[1], ARGV[1])); j.st = 3; j.fin = j.cr
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(j))`
	if err := rc.Eval(ctx, cancelled, []string{redisstore.SessionsKey(v.To)}, v.ID).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if err := rc.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.Status != matcher.Cancelled {
			t.Fatalf("wait = %+v, want cancelled", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait was not woken when the subscription came back")
	}
}
