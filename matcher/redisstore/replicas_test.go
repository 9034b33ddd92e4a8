package redisstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// replicas opens n stores on one Redis, each run in the background, as n
// `mogate serve` processes would.
func replicas(t *testing.T, srv *redistest.Server, n int) []*redisstore.Store {
	t.Helper()
	var out []*redisstore.Store
	for range n {
		s := open(t, options(srv.URL(), nil))
		ctx, cancel := context.WithCancel(context.Background())
		go s.Run(ctx)
		t.Cleanup(func() { cancel(); s.Close() })
		out = append(out, s)
	}
	return out
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestReplicas: a create on A verifies through a webhook on B and wakes a
// Wait on C; C's outbox hears of it; the event goes to one claimer.
func TestReplicas(t *testing.T) {
	srv := redistest.Start(t)
	rs := replicas(t, srv, 3)
	a, b, c := rs[0], rs[1], rs[2]
	ctx := context.Background()
	sess, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan matcher.Session, 1)
	go func() {
		got, _ := c.Wait(ctx, sess.ID)
		done <- got
	}()
	waitFor(t, "the Wait to listen", func() bool { return c.Watching(sess.ID) == 1 })
	drain(c.Events())
	start := time.Now()
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "482913"}
	if o, err := b.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
		t.Fatalf("Ingest on B = %+v %v", o, err)
	}
	select {
	case got := <-done:
		if got.Status != matcher.Verified {
			t.Fatalf("Wait on C = %+v", got)
		}
		t.Logf("Wait on C woken %v after the match on B", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("Wait on C not woken")
	}
	select {
	case <-c.Events():
	case <-time.After(2 * time.Second):
		t.Fatal("C's Events() not signalled by B's match")
	}
	evs, err := c.ClaimEvents(ctx, 30*time.Second, 10)
	if err != nil || len(evs) != 1 || evs[0].ID != matcher.EventID(sess.ID, matcher.Verified) {
		t.Fatalf("C claims %+v %v", evs, err)
	}
	for _, r := range []*redisstore.Store{a, b} {
		if more, err := r.ClaimEvents(ctx, 30*time.Second, 10); err != nil || len(more) != 0 {
			t.Fatalf("another replica claimed a leased event: %+v %v", more, err)
		}
	}
	if err := a.AckEvent(ctx, evs[0], false); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, sess.ID); err != nil || got.Notified != matcher.Delivered {
		t.Fatalf("B reads %+v %v", got, err)
	}
}

// TestReplicasShareOneEffect: one message delivered to three replicas at
// once has one effect and the same outcome; one Idempotency-Key on three
// replicas makes one session.
func TestReplicasShareOneEffect(t *testing.T) {
	srv := redistest.Start(t)
	rs := replicas(t, srv, 3)
	ctx := context.Background()
	sess, _, err := rs[0].Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "000000"}
	req := matcher.CreateRequest{Key: "k", Number: storetest.Mallet, To: storetest.To, TTL: time.Minute, IdemKey: "i1", ReqHash: "h"}
	var wg sync.WaitGroup
	outs := make([]matcher.Outcome, 3)
	ids := make([]string, 3)
	for i, r := range rs {
		wg.Add(2)
		go func() {
			defer wg.Done()
			o, err := r.Ingest(ctx, msg, matcher.IngestOptions{})
			if err != nil {
				t.Error(err)
			}
			outs[i] = o
		}()
		go func() {
			defer wg.Done()
			s, _, err := r.Create(ctx, req)
			if err != nil {
				t.Error(err)
			}
			ids[i] = s.ID
		}()
	}
	wg.Wait()
	firsts := 0
	for _, o := range outs {
		if o.Kind != matcher.Attempted || o.SessionID != sess.ID {
			t.Fatalf("outcomes %+v", outs)
		}
		if !o.Duplicate {
			firsts++
		}
	}
	if got, _ := rs[2].Get(ctx, sess.ID); firsts != 1 || got.Attempts != 1 {
		t.Fatalf("%d first deliveries, %d attempts", firsts, got.Attempts)
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("idempotent creates on three replicas: %v", ids)
	}
}

// TestKilledReplicaLease: a replica that dies holding a lease delays the
// event until the lease runs out; then another replica claims it.
func TestKilledReplicaLease(t *testing.T) {
	srv := redistest.Start(t)
	rs := replicas(t, srv, 2)
	ctx := context.Background()
	if _, err := rs[0].Ingest(ctx, matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Mallet, To: storetest.To, Text: "hi"},
		matcher.IngestOptions{UnmatchedKeys: []string{"k"}}); err != nil {
		t.Fatal(err)
	}
	evs, err := rs[0].ClaimEvents(ctx, time.Second, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("claim %+v %v", evs, err)
	}
	rs[0].Close() // kill -9 of the replica, as far as Redis can tell
	if more, _ := rs[1].ClaimEvents(ctx, time.Second, 10); len(more) != 0 {
		t.Fatalf("claimed while leased: %+v", more)
	}
	time.Sleep(1100 * time.Millisecond)
	more, err := rs[1].ClaimEvents(ctx, time.Second, 10)
	if err != nil || len(more) != 1 || more[0].ID != evs[0].ID {
		t.Fatalf("after the lease: %+v %v", more, err)
	}
}

// TestIdempotencyClaimerDied: a replica claimed an Idempotency-Key and died
// before creating the session; a retry on another replica creates it under
// the claimed id.
func TestIdempotencyClaimerDied(t *testing.T) {
	srv := redistest.Start(t)
	rs := replicas(t, srv, 1)
	ctx := context.Background()
	req := matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute, IdemKey: "i1", ReqHash: "h"}
	first, _, err := rs[0].Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Forge the state a dead claimer leaves: a claim naming a session that
	// does not exist.
	rc := srv.Client()
	keys, err := rc.Keys(ctx, "mogate:idem:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("idempotency keys %v %v", keys, err)
	}
	orphan := first.ID[:len(first.ID)-4] + "aaaa" // the same receiving number's tag
	claimedAt := func(at time.Time) string { return strconv.FormatInt(at.UnixMilli(), 10) }
	if err := rc.Set(ctx, keys[0], orphan+"\x00"+storetest.To+"\x00h\x00"+claimedAt(time.Now()), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, replayed, err := rs[0].Create(ctx, req)
	if err != nil || got.ID != orphan || replayed {
		t.Fatalf("after a dead claimer: %+v %v %v", got, replayed, err)
	}
	if again, replayed, err := rs[0].Create(ctx, req); err != nil || again.ID != orphan || !replayed {
		t.Fatalf("retry: %+v %v %v", again, replayed, err)
	}
	// An old claim whose session is gone (dropped past the retention while
	// a skewed clock kept the claim) is replaced: a new session, never the
	// finished id back as pending.
	stale := first.ID[:len(first.ID)-4] + "bbbb"
	if err := rc.Set(ctx, keys[0], stale+"\x00"+storetest.To+"\x00h\x00"+claimedAt(time.Now().Add(-time.Minute)), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, replayed, err = rs[0].Create(ctx, req)
	if err != nil || replayed || got.ID == stale || got.ID == orphan {
		t.Fatalf("after a stale claim: %+v %v %v", got, replayed, err)
	}
}

// TestBudgetsHoldAcrossReplicas: a sender's capture guesses and unmatched
// messages count once for the whole gateway, whichever replica gets them.
func TestBudgetsHoldAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var rs []*redisstore.Store
	for range 3 {
		o := options(srv.URL(), nil)
		o.CaptureGuessesPerHour, o.UnmatchedPerSenderPerHour = 3, 0
		rs = append(rs, open(t, o))
	}
	victim, _, err := rs[0].Create(ctx, matcher.CreateRequest{Key: "k", To: storetest.To, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("g", i), From: storetest.Mallet, To: storetest.To, Text: "000000"}
		if o, err := rs[i].Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || !o.CaptureTried {
			t.Fatalf("guess %d on replica %d: %+v %v", i, i, o, err)
		}
	}
	msg := matcher.Message{Provider: "tw", MessageID: "g3", From: storetest.Mallet, To: storetest.To, Text: victim.Code}
	if o, err := rs[1].Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind == matcher.Matched || !o.CaptureRefused {
		t.Fatalf("fourth guess: %+v %v", o, err)
	}

	// Two unmatched messages an hour: the third message of the sender is
	// kept away from capture sessions, on any replica.
	o := options(srv.URL(), nil)
	o.UnmatchedPerSenderPerHour = 2
	a, b := open(t, o), open(t, o)
	for i, r := range []*redisstore.Store{a, b} {
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("u", i), From: storetest.Alice, To: storetest.To, Text: "hello"}
		if o, err := r.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Unmatched || !o.CaptureTried {
			t.Fatalf("unmatched %d: %+v %v", i, o, err)
		}
	}
	msg = matcher.Message{Provider: "tw", MessageID: "u2", From: storetest.Alice, To: storetest.To, Text: victim.Code}
	if o, err := a.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind == matcher.Matched || o.CaptureTried {
		t.Fatalf("over the unmatched budget: %+v %v", o, err)
	}
	if got, err := b.Get(ctx, victim.ID); err != nil || got.Status != matcher.Pending {
		t.Fatalf("victim %+v %v", got, err)
	}
}
