// Package storetest is the behavioural suite that every matcher.Store
// passes (memory, memory+WAL, Redis, Redis Cluster), written against the
// Store interface only: docs/matching.md matching, attempts, supersede within
// one API key, capture mode and its guess budget, expiry, dedupe,
// idempotency, nonces, events and wakeups, and channels, routes and
// signals (channels.go).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// The settings a store under test must be opened with.
const (
	MaxAttempts           = 3
	CodeLength            = 6
	Retention             = time.Hour
	CaptureGuessesPerHour = 3
)

// Opener opens an empty store with the settings above whose every
// timestamp and expiry decision follows clock. The suite runs the store
// (Run) and closes it when the test ends.
type Opener func(t *testing.T, clock func() time.Time) matcher.Store

// Clock is a settable time source, on whole milliseconds.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Numbers the suite uses.
const (
	To     = "+14155550100"
	To2    = "+14155550101"
	Alice  = "+14155550123"
	Mallet = "+14155550999"
)

// env is one subtest's store.
type env struct {
	t   *testing.T
	s   matcher.Store
	c   *Clock
	ctx context.Context
}

type suiteCase = struct {
	name string
	fn   func(*env)
}

// Run runs every case of the suite, each on a store of its own.
func Run(t *testing.T, open Opener) {
	cases := []suiteCase{
		{"TextRules", textRules},
		{"AttemptsThenFailed", attemptsThenFailed},
		{"OtherSenderNeverTouches", otherSender},
		{"Supersede", supersede},
		{"SupersedeOnlySameKey", supersedeOnlySameKey},
		{"PendingFor", pendingFor},
		{"CaptureMode", captureMode},
		{"CaptureCandidateTokens", captureTokens},
		{"CaptureGuessBudget", captureGuessBudget},
		{"Expiry", expiry},
		{"SingleUseAndCancel", singleUseAndCancel},
		{"PageToken", pageToken},
		{"Dedupe", dedupe},
		{"ConcurrentRedeliveries", concurrentRedeliveries},
		{"Idempotency", idempotency},
		{"ConcurrentIdempotency", concurrentIdempotency},
		{"Nonces", nonces},
		{"Events", events},
		{"UnmatchedEvents", unmatchedEvents},
		{"EventLeases", eventLeases},
		{"WaitWokenByMatch", waitWoken},
		{"PendingByNumber", pendingByNumber},
		{"Multipart", multipart},
		{"ConcurrentCreatesAndMatches", concurrentCreatesAndMatches},
	}
	cases = append(cases, channelCases...)
	cases = append(cases, ownFirstCases...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
			s := open(t, c.Now)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			t.Cleanup(func() {
				cancel()
				<-done
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(&env{t: t, s: s, c: c, ctx: context.Background()})
		})
	}
}

var msgSeq atomic.Int64

// sms is a message from from to To with a fresh message id.
func sms(from, text string) matcher.Message {
	return matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", msgSeq.Add(1)), From: from, To: To, Text: text}
}

func (e *env) create(key, number, code string) matcher.Session {
	e.t.Helper()
	return e.createReq(matcher.CreateRequest{Key: key, Number: number, Code: code, To: To, TTL: 10 * time.Minute})
}

func (e *env) createReq(req matcher.CreateRequest) matcher.Session {
	e.t.Helper()
	s, _, err := e.s.Create(e.ctx, req)
	if err != nil {
		e.t.Fatalf("Create(%+v): %v", req, err)
	}
	return s
}

func (e *env) ingest(msg matcher.Message) matcher.Outcome {
	e.t.Helper()
	return e.ingestOpt(msg, matcher.IngestOptions{})
}

func (e *env) ingestOpt(msg matcher.Message, opt matcher.IngestOptions) matcher.Outcome {
	e.t.Helper()
	o, err := e.s.Ingest(e.ctx, msg, opt)
	if err != nil {
		e.t.Fatalf("Ingest(%q): %v", msg.Text, err)
	}
	return o
}

func (e *env) get(id string) matcher.Session {
	e.t.Helper()
	s, err := e.s.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return s
}

// claim claims events with a one-minute lease.
func (e *env) claim() []matcher.Event {
	e.t.Helper()
	evs, err := e.s.ClaimEvents(e.ctx, time.Minute, 100)
	if err != nil {
		e.t.Fatalf("ClaimEvents: %v", err)
	}
	return evs
}

// claimWithin claims until at least one event comes or d passes.
func (e *env) claimWithin(d time.Duration) []matcher.Event {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if evs := e.claim(); len(evs) > 0 || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) ack(evs ...matcher.Event) {
	e.t.Helper()
	for _, ev := range evs {
		if err := e.s.AckEvent(e.ctx, ev, false); err != nil {
			e.t.Fatalf("AckEvent(%s): %v", ev.ID, err)
		}
	}
}

func textRules(e *env) {
	matches := []string{"482913", " 482913\n", "Code: 482913", "482 913", "４８２９１３", "٤٨٢٩١٣", "My code is 482913 thanks"}
	for i, text := range matches {
		from := fmt.Sprintf("+1415666%04d", i)
		s := e.create("k", from, "482913")
		o := e.ingest(sms(from, text))
		if o.Kind != matcher.Matched || o.SessionID != s.ID {
			e.t.Fatalf("%q: outcome %+v", text, o)
		}
		got := e.get(s.ID)
		if got.Status != matcher.Verified || got.VerifiedNumber != from || got.Provider != "tw" || got.MessageID == "" || got.FinishedAt.IsZero() {
			e.t.Fatalf("%q: session %+v", text, got)
		}
	}
	for i, text := range []string{"4829135", "482914", "x482913"} {
		from := fmt.Sprintf("+1415777%04d", i)
		s := e.create("k", from, "482913")
		if o := e.ingest(sms(from, text)); o.Kind != matcher.Attempted || o.SessionID != s.ID {
			e.t.Fatalf("%q matched: %+v", text, o)
		}
	}
	// Codes with letters and separators compare normalized.
	s := e.create("k", Alice, "AB-12 cd")
	if o := e.ingest(sms(Alice, "your code: ab12CD")); o.Kind != matcher.Matched || o.SessionID != s.ID {
		e.t.Fatalf("normalized code: %+v", o)
	}
	for _, code := range []string{"ab:cd", "12345678901234567", "!!!"} {
		if _, _, err := e.s.Create(e.ctx, matcher.CreateRequest{Key: "k", Number: Alice, Code: code, To: To, TTL: time.Minute}); !errors.Is(err, matcher.ErrInvalidCode) {
			e.t.Errorf("code %q: %v", code, err)
		}
	}
}

func attemptsThenFailed(e *env) {
	s := e.create("k", Alice, "482913")
	for i, text := range []string{"4829135", "482914"} {
		if o := e.ingest(sms(Alice, text)); o.Kind != matcher.Attempted || o.SessionID != s.ID {
			e.t.Fatalf("attempt %d: %+v", i, o)
		}
	}
	if got := e.get(s.ID); got.Status != matcher.Pending || got.Attempts != 2 || got.Reason != "" {
		e.t.Fatalf("after 2 wrong codes: %+v", got)
	}
	if o := e.ingest(sms(Alice, "000000")); o.Kind != matcher.Exhausted || o.SessionID != s.ID {
		e.t.Fatalf("wrong code number %d: %+v", MaxAttempts, o)
	}
	if got := e.get(s.ID); got.Status != matcher.Failed || got.Attempts != MaxAttempts || got.FinishedAt.IsZero() ||
		got.Reason != matcher.ReasonMaxAttempts {
		e.t.Fatalf("after %d wrong codes: %+v", MaxAttempts, got)
	}
	if o := e.ingest(sms(Alice, "482913")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("right code after failure: %+v", o)
	}
	// A per-session max_attempts.
	s2 := e.createReq(matcher.CreateRequest{Key: "k", Number: Mallet, Code: "111111", To: To, TTL: time.Minute, MaxAttempts: 1})
	if o := e.ingest(sms(Mallet, "222222")); o.Kind != matcher.Exhausted || o.SessionID != s2.ID {
		e.t.Fatalf("max_attempts 1: %+v", o)
	}
}

func otherSender(e *env) {
	s := e.create("k", Alice, "482913")
	for range 4 {
		if o := e.ingest(sms(Mallet, "482913")); o.Kind != matcher.Unmatched {
			e.t.Fatalf("other sender: %+v", o)
		}
	}
	msg := sms(Alice, "482913")
	msg.To = To2
	if o := e.ingest(msg); o.Kind != matcher.Unmatched {
		e.t.Fatalf("other receiving number: %+v", o)
	}
	if got := e.get(s.ID); got.Status != matcher.Pending || got.Attempts != 0 {
		e.t.Fatalf("session touched: %+v", got)
	}
}

func supersede(e *env) {
	old := e.create("k", Alice, "111111")
	nu := e.create("k", Alice, "222222")
	if got := e.get(old.ID); got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		e.t.Fatalf("old = %+v", got)
	}
	if o := e.ingest(sms(Alice, "111111")); o.Kind != matcher.Attempted || o.SessionID != nu.ID {
		e.t.Fatalf("old code: %+v", o)
	}
	if o := e.ingest(sms(Alice, "222222")); o.Kind != matcher.Matched || o.SessionID != nu.ID {
		e.t.Fatalf("new code: %+v", o)
	}
	// The superseded session's event is verification.cancelled, reason superseded.
	found := false
	for _, ev := range e.claim() {
		if ev.Session != nil && ev.Session.ID == old.ID {
			found = ev.Type() == "verification.cancelled" && ev.Session.Reason == matcher.ReasonSuperseded
		}
	}
	if !found {
		e.t.Fatal("no verification.cancelled event with reason superseded")
	}
}

func supersedeOnlySameKey(e *env) {
	a := e.create("a", Alice, "111111")
	b := e.create("b", Alice, "222222")
	if got := e.get(a.ID); got.Status != matcher.Pending {
		e.t.Fatalf("key b's create touched key a's session: %+v", got)
	}
	if o := e.ingest(sms(Alice, "000000")); o.Kind != matcher.Attempted || o.SessionID != a.ID {
		e.t.Fatalf("wrong code: %+v", o)
	}
	if ga, gb := e.get(a.ID), e.get(b.ID); ga.Attempts != 1 || gb.Attempts != 1 {
		e.t.Fatalf("attempts a=%d b=%d, want 1 and 1", ga.Attempts, gb.Attempts)
	}
	if o := e.ingest(sms(Alice, "222222")); o.Kind != matcher.Matched || o.SessionID != b.ID {
		e.t.Fatalf("b's code: %+v", o)
	}
	if got := e.get(a.ID); got.Status != matcher.Pending {
		e.t.Fatalf("b's match touched a: %+v", got)
	}
	e.c.Add(time.Millisecond)
	a2 := e.create("a", Alice, "333333")
	e.c.Add(time.Millisecond)
	c := e.create("c", Alice, "333333")
	if got := e.get(a.ID); got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		e.t.Fatalf("a's own supersede: %+v", got)
	}
	if o := e.ingest(sms(Alice, "333333")); o.Kind != matcher.Matched || o.SessionID != a2.ID {
		e.t.Fatalf("same code: %+v, want the older %s", o, a2.ID)
	}
	if o := e.ingest(sms(Alice, "333333")); o.Kind != matcher.Matched || o.SessionID != c.ID {
		e.t.Fatalf("same code again: %+v, want %s", o, c.ID)
	}
}

// pendingFor: the pending sessions that expect a sender on the given
// numbers, every key's, in the order of the numbers and oldest first per
// number; finished and expired ones are left out.
func pendingFor(e *env) {
	ids := func(sender string, tos ...string) []string {
		e.t.Helper()
		got, err := e.s.PendingFor(e.ctx, sender, tos)
		if err != nil {
			e.t.Fatal(err)
		}
		var out []string
		for _, s := range got {
			if s.Status != matcher.Pending || s.Number != sender || !slices.Contains(tos, s.To) {
				e.t.Fatalf("PendingFor(%s, %v) returned %+v", sender, tos, s)
			}
			out = append(out, s.ID)
		}
		return out
	}
	a := e.create("a", Alice, "111111")
	b := e.create("b", Alice, "222222")
	e.create("a", Mallet, "333333")
	if got := ids(Alice, To); len(got) != 2 || got[0] != a.ID || got[1] != b.ID {
		e.t.Fatalf("pending for Alice = %v, want [%s %s]", got, a.ID, b.ID)
	}
	if got := ids(Alice, To2); len(got) != 0 {
		e.t.Fatalf("pending on another number = %v", got)
	}
	if got := ids(Alice); len(got) != 0 {
		e.t.Fatalf("pending on no number = %v", got)
	}
	c := e.createReq(matcher.CreateRequest{Key: "a", Number: Alice, Code: "444444", To: To2, TTL: 10 * time.Minute})
	if got := ids(Alice, To2, To); len(got) != 3 || got[0] != c.ID || got[1] != a.ID || got[2] != b.ID {
		e.t.Fatalf("pending on two numbers = %v, want [%s %s %s]", got, c.ID, a.ID, b.ID)
	}
	if _, err := e.s.Cancel(e.ctx, a.ID); err != nil {
		e.t.Fatal(err)
	}
	if got := ids(Alice, To); len(got) != 1 || got[0] != b.ID {
		e.t.Fatalf("after cancel = %v", got)
	}
	e.c.Add(11 * time.Minute)
	if got := ids(Alice, To, To2); len(got) != 0 {
		e.t.Fatalf("after expiry = %v", got)
	}
}
