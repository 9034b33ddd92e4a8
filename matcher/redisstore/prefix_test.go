package redisstore_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestPrefixesNeverMeet: two deployments with prefixes a and b on one Redis
// (prod and staging) see none of each other's sessions, page tokens,
// idempotency keys, dedupe records, nonces, budgets or events, and every
// key and channel in Redis begins with one of the two prefixes.
func TestPrefixesNeverMeet(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	openAs := func(prefix string) *redisstore.Store {
		o := options(srv.URL(), nil)
		o.Prefix, o.CaptureGuessesPerHour = prefix, 1
		o.Numbers = []string{storetest.To}
		return open(t, o)
	}
	a, b := openAs("a"), openAs("b:staging")

	sess, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute, IdemKey: "i1", ReqHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, sess.ID); !errors.Is(err, matcher.ErrNotFound) {
		t.Errorf("b.Get(a's session) = %v, want not found", err)
	}
	if _, err := b.ByPageToken(ctx, sess.PageToken); !errors.Is(err, matcher.ErrNotFound) {
		t.Errorf("b.ByPageToken(a's token) = %v, want not found", err)
	}
	if got, err := b.PendingFor(ctx, storetest.Alice, []string{storetest.To}); err != nil || len(got) != 0 {
		t.Errorf("b.PendingFor = %v %v, want none", got, err)
	}
	if _, ok, err := b.LookupIdempotent(ctx, "k", "i1"); ok || err != nil {
		t.Errorf("b.LookupIdempotent(a's key) = %v %v, want none", ok, err)
	}
	if n, err := b.PendingByNumber(ctx); err != nil || len(n) != 0 {
		t.Errorf("b.PendingByNumber = %v %v, want none", n, err)
	}
	if _, err := b.Cancel(ctx, sess.ID); !errors.Is(err, matcher.ErrNotFound) {
		t.Errorf("b.Cancel(a's session) = %v, want not found", err)
	}

	// The right code from the right sender, delivered to b: b has no
	// session, and a's stays pending; the same provider message then
	// verifies it in a (b's dedupe record is not a's).
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "482913"}
	if o, err := b.Ingest(ctx, msg, matcher.IngestOptions{UnmatchedKeys: []string{"k"}}); err != nil || o.Kind != matcher.Unmatched {
		t.Fatalf("b.Ingest = %+v %v, want unmatched", o, err)
	}
	if got, err := a.Get(ctx, sess.ID); err != nil || got.Status != matcher.Pending {
		t.Fatalf("a's session after b's message = %+v %v, want pending", got.Status, err)
	}
	if o, err := a.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched || o.Duplicate {
		t.Fatalf("a.Ingest = %+v %v, want verified, not a duplicate", o, err)
	}

	// Events: b claims only its message.unmatched, a only its verification.
	claim := func(s *redisstore.Store) []matcher.Event {
		evs, err := s.ClaimEvents(ctx, time.Minute, 10)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	if evs := claim(b); len(evs) != 1 || evs[0].Session != nil {
		t.Errorf("b claimed %+v, want its one message.unmatched event", evs)
	}
	if evs := claim(a); len(evs) != 1 || evs[0].Session == nil || evs[0].Session.ID != sess.ID {
		t.Errorf("a claimed %+v, want its verification's event", evs)
	}

	// Budgets: one capture guess an hour each; a's spent guess is not b's.
	guess := func(s *redisstore.Store, id, text string) matcher.Outcome {
		o, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: id, From: "+14155550999", To: storetest.To, Text: text}, matcher.IngestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if o := guess(a, "G1", "000001"); !o.CaptureTried {
		t.Fatalf("a's first guess = %+v, want tried", o)
	}
	if o := guess(b, "G2", "000002"); !o.CaptureTried || o.CaptureRefused {
		t.Errorf("b's first guess = %+v, want tried (a's guess is not b's)", o)
	}
	if o := guess(a, "G3", "000003"); !o.CaptureRefused {
		t.Errorf("a's second guess = %+v, want refused", o)
	}

	// Nonces.
	for _, s := range []*redisstore.Store{a, b} {
		if fresh, err := s.SpendNonce(ctx, "plivo", "n1"); err != nil || !fresh {
			t.Errorf("SpendNonce = %v %v, want fresh in each deployment", fresh, err)
		}
	}
	for _, s := range []*redisstore.Store{a, b} {
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}

	rc := srv.Client()
	keys, err := rc.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys in Redis")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "a:") && !strings.HasPrefix(k, "b:staging:") {
			t.Errorf("key %q begins with neither prefix", k)
		}
	}
	chans, err := rc.PubSubChannels(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(chans)
	if want := []string{"a:wake", "b:staging:wake"}; !slices.Equal(chans, want) {
		t.Errorf("pub/sub channels = %q, want %q", chans, want)
	}
}

// TestPrefixWakeups: a final status in one deployment wakes its own
// waiters, through its own channel.
func TestPrefixWakeups(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	o := options(srv.URL(), nil)
	o.Prefix = "p1"
	a, a2 := open(t, o), open(t, o)
	sess, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	restore := redisstore.SetWaitFallback(time.Hour)
	defer restore()
	done := make(chan matcher.Session, 1)
	go func() {
		got, _ := a2.Wait(ctx, sess.ID)
		done <- got
	}()
	waitFor(t, "the Wait to listen", func() bool { return a2.Watching(sess.ID) == 1 })
	if _, err := a.Cancel(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.Status != matcher.Cancelled {
			t.Fatalf("Wait = %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other replica's Wait was not woken through p1:wake")
	}
}

// TestPrefixRefused: a prefix that would break the hash tags or the key
// names is refused at Open.
func TestPrefixRefused(t *testing.T) {
	for _, p := range []string{"a{b", "a}", "a b", "a\tb", strings.Repeat("x", 65)} {
		o := options("redis://127.0.0.1:1", nil)
		o.Prefix = p
		if _, err := openStore(o); err == nil || !strings.Contains(err.Error(), "redis_prefix") {
			t.Errorf("Open with prefix %q = %v, want a redis_prefix error", p, err)
		}
	}
}
