package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/matcher"
)

func dedupe(e *env) {
	s := e.create("k", Alice, "482913")
	msg := sms(Alice, "000000")
	first := e.ingest(msg)
	again := e.ingest(msg)
	if first.Duplicate || !again.Duplicate || again.Kind != first.Kind || again.SessionID != s.ID {
		e.t.Fatalf("redelivery = %+v (first %+v)", again, first)
	}
	if got := e.get(s.ID); got.Attempts != 1 {
		e.t.Fatalf("redelivery counted again: %d attempts", got.Attempts)
	}
	hit := sms(Alice, "482913")
	if o := e.ingest(hit); o.Kind != matcher.Matched || o.Duplicate {
		e.t.Fatalf("match: %+v", o)
	}
	if o := e.ingest(hit); o.Kind != matcher.Matched || !o.Duplicate || o.SessionID != s.ID {
		e.t.Fatalf("redelivered match: %+v", o)
	}
	// The same message id from another provider entry is another message.
	other := hit
	other.Provider = "tw-eu"
	if o := e.ingest(other); o.Duplicate {
		e.t.Fatalf("another provider's message: %+v", o)
	}
}

func concurrentRedeliveries(e *env) {
	s := e.create("k", Alice, "482913")
	msg := sms(Alice, "111111")
	var wg sync.WaitGroup
	var dups atomic.Int32
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := e.s.Ingest(e.ctx, msg, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
			if err != nil || o.SessionID != s.ID || o.Kind != matcher.Attempted {
				e.t.Errorf("Ingest = %+v %v", o, err)
			}
			if o.Duplicate {
				dups.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := e.get(s.ID); got.Attempts != 1 || dups.Load() != 19 {
		e.t.Fatalf("attempts = %d, duplicates = %d", got.Attempts, dups.Load())
	}
}

func idempotency(e *env) {
	req := matcher.CreateRequest{Key: "k", Number: Alice, To: To, TTL: time.Minute, IdemKey: "abc", ReqHash: "h1"}
	a, replayed, err := e.s.Create(e.ctx, req)
	if err != nil || replayed {
		e.e(err)
	}
	b, replayed, err := e.s.Create(e.ctx, req)
	if err != nil || !replayed || b.ID != a.ID || b.Code != a.Code {
		e.t.Fatalf("retry = %+v %v %v", b, replayed, err)
	}
	if got, ok, err := e.s.LookupIdempotent(e.ctx, "k", "abc"); err != nil || !ok || got.ID != a.ID {
		e.t.Fatalf("LookupIdempotent = %+v %v %v", got, ok, err)
	}
	if _, ok, err := e.s.LookupIdempotent(e.ctx, "k", "nope"); err != nil || ok {
		e.t.Fatalf("LookupIdempotent(unknown) = %v %v", ok, err)
	}
	req.ReqHash = "h2"
	if _, _, err := e.s.Create(e.ctx, req); !errors.Is(err, matcher.ErrIdempotencyReused) {
		e.t.Fatalf("changed request: %v", err)
	}
	req.Key, req.ReqHash = "other-key", "h1"
	if c, replayed, err := e.s.Create(e.ctx, req); err != nil || replayed || c.ID == a.ID {
		e.t.Fatalf("another API key shares the idempotency key: %+v %v", c, err)
	}
	// A refused create holds no key: the same key works for a valid request.
	bad := matcher.CreateRequest{Key: "k", Number: Alice, Code: "!!", To: To, TTL: time.Minute, IdemKey: "bad", ReqHash: "h1"}
	if _, _, err := e.s.Create(e.ctx, bad); !errors.Is(err, matcher.ErrInvalidCode) {
		e.t.Fatalf("invalid code: %v", err)
	}
	bad.Code, bad.ReqHash = "", "h3"
	if _, replayed, err := e.s.Create(e.ctx, bad); err != nil || replayed {
		e.t.Fatalf("after a refused create: %v %v", replayed, err)
	}
}

func (e *env) e(err error) {
	e.t.Helper()
	e.t.Fatalf("unexpected: %v", err)
}

func concurrentIdempotency(e *env) {
	req := matcher.CreateRequest{Key: "k", Number: Alice, To: To, TTL: time.Minute, IdemKey: "race", ReqHash: "h"}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]int{}
	fresh := 0
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, replayed, err := e.s.Create(e.ctx, req)
			if err != nil {
				e.t.Error(err)
				return
			}
			mu.Lock()
			ids[s.ID]++
			if !replayed {
				fresh++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(ids) != 1 || fresh != 1 {
		e.t.Fatalf("ids %v, %d not replayed", ids, fresh)
	}
	if n, _ := e.s.PendingByNumber(e.ctx); n[To] != 1 {
		e.t.Fatalf("pending %v", n)
	}
}

func nonces(e *env) {
	spend := func(p, n string) bool {
		e.t.Helper()
		fresh, err := e.s.SpendNonce(e.ctx, p, n)
		if err != nil {
			e.t.Fatal(err)
		}
		return fresh
	}
	if !spend("plivo", "n1") || spend("plivo", "n1") || !spend("plivo-eu", "n1") {
		e.t.Fatal("a nonce is fresh once per provider entry")
	}
	msg := matcher.Message{Provider: "plivo", MessageID: "n2", From: Mallet, To: To, Text: "x"}
	if o := e.ingest(msg); o.Duplicate {
		e.t.Fatal("message id collided with a nonce")
	}
	if !spend("plivo", "n2") {
		e.t.Fatal("nonce collided with a message id")
	}
	var wg sync.WaitGroup
	var n atomic.Int32
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fresh, err := e.s.SpendNonce(e.ctx, "plivo", "race"); err == nil && fresh {
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if n.Load() != 1 {
		e.t.Fatalf("%d concurrent spends were fresh", n.Load())
	}
}

func events(e *env) {
	drain(e.s.Events())
	s := e.create("k", Alice, "482913")
	e.ingest(sms(Alice, "482913"))
	woken(e, "verify")
	evs := e.claim()
	if len(evs) != 1 {
		e.t.Fatalf("events after a verification: %+v", evs)
	}
	ev := evs[0]
	got := e.get(s.ID)
	if ev.ID != matcher.EventID(s.ID, matcher.Verified) || ev.Key != "k" || ev.Type() != "verification.verified" ||
		ev.Session.Status != matcher.Verified || ev.Session.ID != s.ID || !ev.At.Equal(got.FinishedAt) {
		e.t.Fatalf("event %+v (session %+v)", ev, ev.Session)
	}
	if again := e.claim(); len(again) != 0 {
		e.t.Fatalf("a leased event was claimed again: %+v", again)
	}
	e.ack(ev)
	if got := e.get(s.ID); got.Notified != matcher.Delivered {
		e.t.Fatalf("acked session: %+v", got)
	}
	e.c.Add(2 * time.Minute)
	if again := e.claim(); len(again) != 0 {
		e.t.Fatalf("an acked event came back: %+v", again)
	}
	// One event per final status: failed, cancelled.
	f := e.createReq(matcher.CreateRequest{Key: "k2", Number: Mallet, Code: "111111", To: To, TTL: time.Minute, MaxAttempts: 1})
	e.ingest(sms(Mallet, "222222"))
	c := e.create("k", Alice, "333333")
	drain(e.s.Events())
	if _, err := e.s.Cancel(e.ctx, c.ID); err != nil {
		e.t.Fatal(err)
	}
	woken(e, "cancel")
	types := map[string]string{}
	for _, ev := range e.claim() {
		types[ev.Session.ID] = ev.Type() + " " + ev.Session.Reason
		if ev.ID != matcher.EventID(ev.Session.ID, ev.Session.Status) {
			e.t.Fatalf("event id %s", ev.ID)
		}
	}
	if len(types) != 2 || types[f.ID] != "verification.failed max_attempts" ||
		types[c.ID] != "verification.cancelled cancelled_by_api" {
		e.t.Fatalf("events %v", types)
	}
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

func woken(e *env, what string) {
	e.t.Helper()
	select {
	case <-e.s.Events():
	case <-time.After(3 * time.Second):
		e.t.Fatalf("Events() not signalled after %s", what)
	}
}

func unmatchedEvents(e *env) {
	e.ingest(sms(Mallet, "no code here"))
	if evs := e.claim(); len(evs) != 0 {
		e.t.Fatalf("events without UnmatchedKeys: %+v", evs)
	}
	msg := sms(Mallet, "hello")
	keys := []string{"k1", "k2"}
	if o := e.ingestOpt(msg, matcher.IngestOptions{UnmatchedKeys: keys}); o.Kind != matcher.Unmatched {
		e.t.Fatalf("outcome %+v", o)
	}
	e.ingestOpt(msg, matcher.IngestOptions{UnmatchedKeys: keys}) // a redelivery adds nothing
	evs := e.claim()
	if len(evs) != 2 {
		e.t.Fatalf("unmatched events %+v", evs)
	}
	for _, ev := range evs {
		if ev.Type() != "message.unmatched" || ev.Unmatched == nil || ev.ID != matcher.UnmatchedEventID(msg.Provider, msg.MessageID, ev.Key) ||
			ev.Unmatched.Message.Text != "hello" || ev.Unmatched.Message.From != Mallet || ev.At.IsZero() {
			e.t.Fatalf("event %+v", ev)
		}
	}
	e.ack(evs...)
	e.c.Add(2 * time.Minute)
	if again := e.claim(); len(again) != 0 {
		e.t.Fatalf("acked unmatched events came back: %+v", again)
	}
}

func eventLeases(e *env) {
	s := e.create("k", Alice, "482913")
	e.ingest(sms(Alice, "482913"))
	claim := func() []matcher.Event {
		evs, err := e.s.ClaimEvents(e.ctx, 30*time.Second, 10)
		if err != nil {
			e.t.Fatal(err)
		}
		return evs
	}
	first := claim()
	if len(first) != 1 || len(claim()) != 0 {
		e.t.Fatalf("first claim %+v", first)
	}
	// The holder died: its lease runs out and the event is claimable again.
	e.c.Add(31 * time.Second)
	again := claim()
	if len(again) != 1 || again[0].ID != first[0].ID {
		e.t.Fatalf("after the lease: %+v", again)
	}
	if err := e.s.AckEvent(e.ctx, again[0], true); err != nil {
		e.t.Fatal(err)
	}
	e.c.Add(time.Minute)
	if evs := claim(); len(evs) != 0 {
		e.t.Fatalf("a dead event came back: %+v", evs)
	}
	if got := e.get(s.ID); got.Notified != matcher.Dead {
		e.t.Fatalf("session after a dead ack: %+v", got)
	}
	// A failed delivery is handed back for later, its attempts kept; a
	// holder renews a lease the same way.
	s2 := e.create("k", Mallet, "654321")
	e.ingest(sms(Mallet, "654321"))
	evs := claim()
	if len(evs) != 1 || evs[0].Session.ID != s2.ID || evs[0].Attempts != 0 {
		e.t.Fatalf("claim = %+v", evs)
	}
	evs[0].Attempts = 3
	if err := e.s.DeferEvent(e.ctx, evs[0], e.c.Now().Add(5*time.Minute)); err != nil {
		e.t.Fatal(err)
	}
	e.c.Add(4 * time.Minute) // past the 30 s lease, before the deferral
	if got := claim(); len(got) != 0 {
		e.t.Fatalf("a deferred event came back early: %+v", got)
	}
	e.c.Add(2 * time.Minute)
	got := claim()
	if len(got) != 1 || got[0].ID != evs[0].ID || got[0].Attempts != 3 {
		e.t.Fatalf("after the deferral: %+v", got)
	}
	if err := e.s.AckEvent(e.ctx, got[0], false); err != nil {
		e.t.Fatal(err)
	}
	if err := e.s.DeferEvent(e.ctx, got[0], e.c.Now()); err != nil {
		e.t.Fatal(err)
	}
	if evs := claim(); len(evs) != 0 {
		e.t.Fatalf("deferring an acked event revived it: %+v", evs)
	}
	// A limit is honoured.
	for i := range 5 {
		from := fmt.Sprintf("+1415999%04d", i)
		e.create("k", from, "123456")
		e.ingest(sms(from, "123456"))
	}
	if evs, err := e.s.ClaimEvents(e.ctx, time.Minute, 3); err != nil || len(evs) != 3 {
		e.t.Fatalf("limit 3: %d %v", len(evs), err)
	}
	if evs := claim(); len(evs) != 2 {
		e.t.Fatalf("the rest: %d", len(evs))
	}
}

func waitWoken(e *env) {
	s := e.create("k", Alice, "482913")
	done := make(chan matcher.Session, 1)
	go func() {
		got, err := e.s.Wait(context.Background(), s.ID)
		if err != nil {
			e.t.Error(err)
		}
		done <- got
	}()
	time.Sleep(100 * time.Millisecond)
	e.ingest(sms(Alice, "482913"))
	select {
	case got := <-done:
		if got.Status != matcher.Verified {
			e.t.Fatalf("Wait = %+v", got)
		}
	case <-time.After(3 * time.Second):
		e.t.Fatal("Wait not woken by the match")
	}
	if got, err := e.s.Wait(e.ctx, s.ID); err != nil || got.Status != matcher.Verified {
		e.t.Fatalf("Wait on a final session = %+v %v", got, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	s2 := e.create("k", Mallet, "482913")
	if got, err := e.s.Wait(ctx, s2.ID); err != nil || got.Status != matcher.Pending {
		e.t.Fatalf("Wait with deadline = %+v %v", got, err)
	}
	if _, err := e.s.Wait(e.ctx, "vrf_aaaaaaaaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, matcher.ErrNotFound) {
		e.t.Fatalf("Wait(unknown) = %v", err)
	}
	// Expiry ends a Wait too.
	s3 := e.createReq(matcher.CreateRequest{Key: "k", Number: Alice, Code: "1234", To: To2, TTL: time.Minute})
	go func() {
		got, _ := e.s.Wait(context.Background(), s3.ID)
		done <- got
	}()
	time.Sleep(100 * time.Millisecond)
	e.c.Add(time.Minute)
	select {
	case got := <-done:
		if got.Status != matcher.Expired {
			e.t.Fatalf("Wait past expiry = %+v", got)
		}
	case <-time.After(3 * time.Second):
		e.t.Fatal("Wait not ended by the expiry")
	}
}

func pendingByNumber(e *env) {
	check := func(step string, want map[string]int) {
		e.t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for {
			got, err := e.s.PendingByNumber(e.ctx)
			if err != nil {
				e.t.Fatal(err)
			}
			if fmt.Sprint(got) == fmt.Sprint(want) {
				return
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("%s: pending %v, want %v", step, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	check("empty", map[string]int{})
	a := e.create("k", Alice, "111111")
	e.create("k", Mallet, "222222")
	e.createReq(matcher.CreateRequest{Key: "k", To: To2, TTL: time.Minute})
	check("created", map[string]int{To: 2, To2: 1})
	e.create("k", Alice, "444444") // supersedes a
	check("superseded", map[string]int{To: 2, To2: 1})
	e.ingest(sms(Mallet, "222222"))
	check("verified", map[string]int{To: 1, To2: 1})
	if _, err := e.s.Cancel(e.ctx, a.ID); !errors.Is(err, matcher.ErrNotPending) {
		e.t.Fatal(err)
	}
	e.c.Add(2 * time.Minute)
	check("expired", map[string]int{To: 1})
}

func multipart(e *env) {
	s := e.create("k", Alice, "482913")
	parts := map[int]string{1: "Your verification code is ", 2: "482", 3: "913 thanks"}
	part := func(n int) matcher.Message {
		msg := sms(Alice, parts[n])
		msg.Parts, msg.Part, msg.PartsRef = 3, n, "ref9"
		return msg
	}
	for _, n := range []int{3, 2} {
		if o := e.ingest(part(n)); o.Kind != matcher.PartStored {
			e.t.Fatalf("part %d: %+v", n, o)
		}
	}
	if got := e.get(s.ID); got.Status != matcher.Pending || got.Attempts != 0 {
		e.t.Fatalf("a partial message touched the session: %+v", got)
	}
	last := part(1)
	if o := e.ingest(last); o.Kind != matcher.Matched || o.SessionID != s.ID {
		e.t.Fatalf("last part: %+v", o)
	}
	if o := e.ingest(last); !o.Duplicate || o.Kind != matcher.Matched {
		e.t.Fatalf("last part again: %+v", o)
	}
}

func concurrentCreatesAndMatches(e *env) {
	var wg sync.WaitGroup
	var verified atomic.Int32
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				from := fmt.Sprintf("+1415%07d", g*1000+i)
				s, _, err := e.s.Create(e.ctx, matcher.CreateRequest{Key: "k", Number: from, To: To, TTL: time.Minute})
				if err != nil {
					e.t.Error(err)
					return
				}
				o, err := e.s.Ingest(e.ctx, matcher.Message{Provider: "p", MessageID: s.ID, From: from, To: To, Text: s.Code}, matcher.IngestOptions{})
				if err == nil && o.Kind == matcher.Matched && o.SessionID == s.ID {
					verified.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if verified.Load() != 100 {
		e.t.Fatalf("verified %d of 100", verified.Load())
	}
	if n, err := e.s.PendingByNumber(e.ctx); err != nil || n[To] != 0 {
		e.t.Fatalf("pending = %v %v", n, err)
	}
}
