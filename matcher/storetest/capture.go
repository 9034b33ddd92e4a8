package storetest

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
)

func captureMode(e *env) {
	s := e.create("k", "", "")
	if len(s.Code) < matcher.MinCaptureCodeLen || len(s.Code) < CodeLength || !s.Capture() {
		e.t.Fatalf("generated capture code %q", s.Code)
	}
	for _, c := range s.Code {
		if c < '0' || c > '9' {
			e.t.Fatalf("generated capture code %q is not digits", s.Code)
		}
	}
	if _, _, err := e.s.Create(e.ctx, matcher.CreateRequest{Key: "k", Code: "48291357", To: To, TTL: time.Minute}); !errors.Is(err, matcher.ErrCodeNotAllowed) {
		e.t.Fatalf("capture create with a code: %v", err)
	}
	if o := e.ingest(sms(Mallet, "nope 000000")); o.Kind != matcher.Unmatched || !o.CaptureTried {
		e.t.Fatalf("wrong code: %+v", o)
	}
	o := e.ingest(sms(Mallet, "Code "+s.Code))
	if o.Kind != matcher.Matched || o.SessionID != s.ID || !o.CaptureTried {
		e.t.Fatalf("capture: %+v", o)
	}
	if got := e.get(s.ID); got.VerifiedNumber != Mallet || got.Status != matcher.Verified {
		e.t.Fatalf("capture session = %+v", got)
	}
	// NoCapture (a sender over its unmatched limit) skips capture sessions.
	s2 := e.create("k", "", "")
	if o := e.ingestOpt(sms(Alice, s2.Code), matcher.IngestOptions{NoCapture: true}); o.Kind != matcher.Unmatched || o.CaptureTried {
		e.t.Fatalf("NoCapture: %+v", o)
	}
	// Codes stay unique among pending capture sessions of a number.
	seen := map[string]bool{s2.Code: true}
	for range 50 {
		c := e.create("k", "", "")
		if seen[c.Code] {
			e.t.Fatalf("capture code %s issued twice while pending", c.Code)
		}
		seen[c.Code] = true
	}
}

func captureTokens(e *env) {
	cases := []struct {
		text  string
		match bool
	}{
		{"%s", true},
		{"Code %s", true},
		{"Code: %s", true},
		{"my code is %s thanks", true},
		{"a\nb\n%s", true},
		{"a\nb\nc\n%s", false},
		{"a, b, c, %s", false},
		{"x%s", false},
		{"%s7", false},
		{"1 %s", false},
		{"a  b  c  d %s", false},
		{"%s and %s", false},
	}
	for i, tc := range cases {
		s := e.create("k", "", "")
		text := strings.ReplaceAll(tc.text, "%s", s.Code)
		// Every message comes from another sender: the guess budget is not the point here.
		from := fmt.Sprintf("+1415888%04d", i)
		o := e.ingest(sms(from, text))
		if (o.Kind == matcher.Matched) != tc.match {
			e.t.Fatalf("%q: %+v, want match %v", text, o, tc.match)
		}
	}
}

func captureGuessBudget(e *env) {
	hour := matcher.CreateRequest{Key: "k", To: To, TTL: time.Hour}
	victim, other := e.createReq(hour), e.createReq(hour)
	if o := e.ingest(sms(Mallet, other.Code)); o.Kind != matcher.Matched || !o.CaptureTried {
		e.t.Fatalf("hit: %+v", o)
	}
	// A miss absorbed by the sender's own session costs a guess too.
	e.create("k", Mallet, "999999")
	if o := e.ingest(sms(Mallet, "123456")); o.Kind != matcher.Attempted || !o.CaptureTried {
		e.t.Fatalf("absorbed miss: %+v", o)
	}
	if o := e.ingest(sms(Mallet, "654321")); o.Kind != matcher.Attempted || !o.CaptureTried {
		e.t.Fatalf("miss: %+v", o)
	}
	// The budget is spent: the right code is refused.
	o := e.ingest(sms(Mallet, victim.Code))
	if o.Kind == matcher.Matched || !o.CaptureRefused || o.CaptureTried {
		e.t.Fatalf("past the budget: %+v", o)
	}
	if got := e.get(victim.ID); got.Status != matcher.Pending {
		e.t.Fatalf("victim = %+v", got)
	}
	// Another sender has its own budget.
	if o := e.ingest(sms(Alice, "000001")); !o.CaptureTried {
		e.t.Fatalf("another sender: %+v", o)
	}
	// A message matched by the sender's own session is no guess.
	e.create("k", Alice, "777777")
	if o := e.ingest(sms(Alice, "777777")); o.Kind != matcher.Matched || o.CaptureTried {
		e.t.Fatalf("own session: %+v", o)
	}
	// The budget refills with time: one guess back after an hour/budget.
	e.c.Add(time.Hour/CaptureGuessesPerHour + time.Second)
	if o := e.ingest(sms(Mallet, victim.Code)); o.Kind != matcher.Matched || o.SessionID != victim.ID {
		e.t.Fatalf("after refill: %+v", o)
	}
}

func expiry(e *env) {
	s := e.createReq(matcher.CreateRequest{Key: "k", Number: Alice, Code: "482913", To: To, TTL: time.Minute})
	capture := e.createReq(matcher.CreateRequest{Key: "k", To: To, TTL: time.Minute})
	if got := e.get(s.ID); got.Status != matcher.Pending || !got.ExpiresAt.Equal(got.CreatedAt.Add(time.Minute)) {
		e.t.Fatalf("fresh session %+v", got)
	}
	e.c.Add(time.Minute)
	// At expires_at the session reads expired, before any sweep.
	for _, id := range []string{s.ID, capture.ID} {
		if got := e.get(id); got.Status != matcher.Expired || got.FinishedAt.IsZero() || got.Reason != matcher.ReasonExpired {
			e.t.Fatalf("past expiry: %+v", got)
		}
	}
	if o := e.ingest(sms(Alice, "482913")); o.Kind == matcher.Matched || o.Kind == matcher.Attempted {
		e.t.Fatalf("expired session matched: %+v", o)
	}
	if o := e.ingest(sms(Mallet, capture.Code)); o.Kind == matcher.Matched {
		e.t.Fatalf("expired capture session matched: %+v", o)
	}
	if _, err := e.s.Cancel(e.ctx, s.ID); !errors.Is(err, matcher.ErrNotPending) {
		e.t.Fatalf("cancel expired: %v", err)
	}
	// Exactly one expired event each, from the background sweep.
	got := map[string]int{}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		for _, ev := range e.claimWithin(100 * time.Millisecond) {
			if ev.Session == nil || ev.Type() != "verification.expired" {
				e.t.Fatalf("unexpected event %s %+v", ev.Type(), ev)
			}
			if ev.ID != matcher.EventID(ev.Session.ID, matcher.Expired) || ev.Session.Status != matcher.Expired ||
				ev.Session.Reason != matcher.ReasonExpired {
				e.t.Fatalf("event %+v", ev)
			}
			got[ev.Session.ID]++
			e.ack(ev)
		}
	}
	if got[s.ID] != 1 || got[capture.ID] != 1 {
		e.t.Fatalf("expired events %v", got)
	}
	time.Sleep(1500 * time.Millisecond) // more sweeps
	e.c.Add(2 * time.Minute)            // and any lease would have run out
	if evs := e.claim(); len(evs) != 0 {
		e.t.Fatalf("more events after the ack: %+v", evs)
	}
	if got := e.get(s.ID); got.Status != matcher.Expired || got.Notified != matcher.Delivered || got.Reason != matcher.ReasonExpired {
		e.t.Fatalf("after the sweep: %+v", got)
	}
}

func singleUseAndCancel(e *env) {
	s := e.create("k", Alice, "482913")
	e.ingest(sms(Alice, "482913"))
	if o := e.ingest(sms(Alice, "482913")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("second verification: %+v", o)
	}
	if _, err := e.s.Cancel(e.ctx, s.ID); !errors.Is(err, matcher.ErrNotPending) {
		e.t.Fatalf("cancel verified: %v", err)
	}
	c := e.create("k", Mallet, "111111")
	got, err := e.s.Cancel(e.ctx, c.ID)
	if err != nil || got.Status != matcher.Cancelled || got.Reason != matcher.ReasonCancelledByAPI {
		e.t.Fatalf("Cancel = %+v %v", got, err)
	}
	if o := e.ingest(sms(Mallet, "111111")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("cancelled matched: %+v", o)
	}
	for _, id := range []string{"nope", "vrf_aaaaaaaaaaaaaaaaaaaaaaaaaa", "", "r_otp_aaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		if _, err := e.s.Cancel(e.ctx, id); !errors.Is(err, matcher.ErrNotFound) {
			e.t.Errorf("Cancel(%q) = %v", id, err)
		}
		if _, err := e.s.Get(e.ctx, id); !errors.Is(err, matcher.ErrNotFound) {
			e.t.Errorf("Get(%q) = %v", id, err)
		}
	}
}

func pageToken(e *env) {
	s := e.createReq(matcher.CreateRequest{Key: "k", Number: Alice, Code: "482913", To: To, TTL: time.Minute,
		API: "contiguity", IDPrefix: "r_otp_", Country: "US", Language: "en", Callback: "https://a.example/cb",
		Redirect: "https://a.example/done", Metadata: []byte(`{"a":1}`)})
	got, err := e.s.ByPageToken(e.ctx, s.PageToken)
	if err != nil || got.ID != s.ID || !strings.HasPrefix(s.ID, "r_otp_") {
		e.t.Fatalf("ByPageToken = %+v %v", got, err)
	}
	if got.API != "contiguity" || got.Country != "US" || got.Language != "en" || got.Callback != "https://a.example/cb" ||
		got.Redirect != "https://a.example/done" || string(got.Metadata) != `{"a":1}` || got.Code != "482913" || got.To != To || got.Key != "k" {
		e.t.Fatalf("fields lost: %+v", got)
	}
	if s.PageToken == s.ID {
		e.t.Fatal("page token is the id")
	}
	if _, err := e.s.ByPageToken(e.ctx, s.ID); !errors.Is(err, matcher.ErrNotFound) {
		e.t.Fatalf("session id works as page token: %v", err)
	}
	if _, err := e.s.ByPageToken(e.ctx, "pt_nope"); !errors.Is(err, matcher.ErrNotFound) {
		e.t.Fatalf("bad token: %v", err)
	}
}
