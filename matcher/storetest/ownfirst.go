package storetest

import (
	"time"

	"github.com/mogate/mogate/matcher"
)

// ownFirstCases are the cases of IngestOptions.OwnFirst: the gateway's
// first call for a message, which charges no budget.
var ownFirstCases = []suiteCase{
	{"OwnFirstOwnMatch", ownFirstOwnMatch},
	{"OwnFirstWrongCode", ownFirstWrongCode},
	{"OwnFirstCaptureAndUnmatched", ownFirstCaptureAndUnmatched},
	{"OwnFirstMultipart", ownFirstMultipart},
	{"OwnFirstOtherNumber", ownFirstOtherNumber},
}

var ownFirst = matcher.IngestOptions{OwnFirst: true}

// ownFirstOwnMatch: the sender's own session verifies in the first call,
// which records the message: a redelivery, with or without OwnFirst, is
// a duplicate. No capture guess is spent.
func ownFirstOwnMatch(e *env) {
	s := e.create("k", Alice, "482913")
	msg := sms(Alice, "Code 482913")
	if o := e.ingestOpt(msg, ownFirst); o.Kind != matcher.Matched || o.SessionID != s.ID || o.NeedsBudget || o.Duplicate || o.CaptureTried {
		e.t.Fatalf("own match: %+v", o)
	}
	if got := e.get(s.ID); got.Status != matcher.Verified || got.MessageID != msg.MessageID {
		e.t.Fatalf("session = %+v", got)
	}
	for _, opt := range []matcher.IngestOptions{ownFirst, {}} {
		if o := e.ingestOpt(msg, opt); !o.Duplicate || o.Kind != matcher.Matched || o.SessionID != s.ID || o.NeedsBudget {
			e.t.Fatalf("redelivery (%+v): %+v", opt, o)
		}
	}
}

// ownFirstWrongCode: a wrong code from the expected sender would go on to
// capture matching (it is one guess of its sender, docs/matching.md), so
// the first call records nothing and no attempt; the second call counts
// the attempt. Without capture matching (NoCapture) the first call counts
// it.
func ownFirstWrongCode(e *env) {
	s := e.create("k", Alice, "482913")
	msg := sms(Alice, "111111")
	for range 2 {
		if o := e.ingestOpt(msg, ownFirst); !o.NeedsBudget || o.Duplicate || o.CaptureTried {
			e.t.Fatalf("wrong code, first call: %+v", o)
		}
	}
	if got := e.get(s.ID); got.Status != matcher.Pending || got.Attempts != 0 {
		e.t.Fatalf("the first call counted an attempt: %+v", got)
	}
	if o := e.ingest(msg); o.Kind != matcher.Attempted || o.SessionID != s.ID || !o.CaptureTried || o.NeedsBudget {
		e.t.Fatalf("wrong code, second call: %+v", o)
	}
	if o := e.ingestOpt(msg, ownFirst); !o.Duplicate || o.Kind != matcher.Attempted || o.NeedsBudget {
		e.t.Fatalf("wrong code redelivered: %+v", o)
	}
	noCapture := matcher.IngestOptions{OwnFirst: true, NoCapture: true}
	if o := e.ingestOpt(sms(Alice, "222222"), noCapture); o.Kind != matcher.Attempted || o.SessionID != s.ID || o.NeedsBudget || o.CaptureTried {
		e.t.Fatalf("wrong code with NoCapture: %+v", o)
	}
	if got := e.get(s.ID); got.Attempts != 2 {
		e.t.Fatalf("attempts = %d, want 2", got.Attempts)
	}
}

// ownFirstCaptureAndUnmatched: a capture code and a message that matches
// nothing record nothing in the first call (no dedupe record, no capture
// guess spent, no event), however often it comes; the second call
// matches or records them as without OwnFirst.
func ownFirstCaptureAndUnmatched(e *env) {
	c := e.createReq(matcher.CreateRequest{Key: "k", To: To, TTL: time.Hour})
	keys := []string{"k1"}
	first := matcher.IngestOptions{OwnFirst: true, UnmatchedKeys: keys}
	// More first calls than the sender has guesses: none is spent.
	for i := range CaptureGuessesPerHour + 1 {
		if o := e.ingestOpt(sms(Mallet, "000000"), first); !o.NeedsBudget || o.Duplicate || o.CaptureTried || o.CaptureRefused {
			e.t.Fatalf("unmatched %d, first call: %+v", i, o)
		}
	}
	hit := sms(Mallet, c.Code)
	if o := e.ingestOpt(hit, first); !o.NeedsBudget || o.Duplicate {
		e.t.Fatalf("capture code, first call: %+v", o)
	}
	if got := e.get(c.ID); got.Status != matcher.Pending {
		e.t.Fatalf("capture session after the first call: %+v", got)
	}
	if evs := e.claim(); len(evs) != 0 {
		e.t.Fatalf("events after first calls: %+v", evs)
	}
	if o := e.ingestOpt(hit, matcher.IngestOptions{UnmatchedKeys: keys}); o.Kind != matcher.Matched || o.SessionID != c.ID || !o.CaptureTried || o.NeedsBudget {
		e.t.Fatalf("capture code, second call: %+v", o)
	}
	if o := e.ingestOpt(hit, first); !o.Duplicate || o.Kind != matcher.Matched || o.NeedsBudget {
		e.t.Fatalf("capture code redelivered: %+v", o)
	}
	miss := sms(Mallet, "hello")
	if o := e.ingestOpt(miss, first); !o.NeedsBudget {
		e.t.Fatalf("unmatched, first call: %+v", o)
	}
	if o := e.ingestOpt(miss, matcher.IngestOptions{UnmatchedKeys: keys}); o.Kind != matcher.Unmatched || !o.CaptureTried || o.NeedsBudget || o.Duplicate {
		e.t.Fatalf("unmatched, second call: %+v", o)
	}
	var unmatched []matcher.Event
	for _, ev := range e.claimWithin(2 * time.Second) {
		if ev.Unmatched != nil {
			unmatched = append(unmatched, ev)
		}
	}
	if len(unmatched) != 1 || unmatched[0].ID != matcher.UnmatchedEventID(miss.Provider, miss.MessageID, "k1") {
		e.t.Fatalf("unmatched events: %+v", unmatched)
	}
	if o := e.ingestOpt(miss, first); !o.Duplicate || o.Kind != matcher.Unmatched {
		e.t.Fatalf("unmatched redelivered: %+v", o)
	}
	// Without capture matching (NoCapture) the first call records it.
	nc := sms(Mallet, "hello again")
	if o := e.ingestOpt(nc, matcher.IngestOptions{OwnFirst: true, NoCapture: true}); o.Kind != matcher.Unmatched || o.NeedsBudget || o.CaptureTried {
		e.t.Fatalf("unmatched with NoCapture: %+v", o)
	}
	if o := e.ingest(nc); !o.Duplicate {
		e.t.Fatalf("unmatched with NoCapture redelivered: %+v", o)
	}
}

// ownFirstMultipart: a part that does not complete its message is stored
// by the first call; the part that completes it changes nothing there,
// and the second call matches the whole.
func ownFirstMultipart(e *env) {
	s := e.create("k", Alice, "482913")
	part := func(n int, text string) matcher.Message {
		msg := sms(Alice, text)
		msg.Parts, msg.Part, msg.PartsRef = 2, n, "ref-own-first"
		return msg
	}
	p1, p2 := part(1, "Code 482"), part(2, "913")
	if o := e.ingestOpt(p1, ownFirst); o.Kind != matcher.PartStored || o.NeedsBudget {
		e.t.Fatalf("first part, first call: %+v", o)
	}
	if o := e.ingestOpt(p1, ownFirst); !o.Duplicate || o.Kind != matcher.PartStored {
		e.t.Fatalf("first part redelivered: %+v", o)
	}
	for range 2 {
		if o := e.ingestOpt(p2, ownFirst); !o.NeedsBudget || o.Duplicate {
			e.t.Fatalf("completing part, first call: %+v", o)
		}
	}
	if got := e.get(s.ID); got.Status != matcher.Pending {
		e.t.Fatalf("session after the first call: %+v", got)
	}
	if o := e.ingest(p2); o.Kind != matcher.Matched || o.SessionID != s.ID {
		e.t.Fatalf("completing part, second call: %+v", o)
	}
	if o := e.ingestOpt(p2, ownFirst); !o.Duplicate || o.Kind != matcher.Matched {
		e.t.Fatalf("completing part redelivered: %+v", o)
	}
}

// ownFirstOtherNumber: the sender's own session reached on a route to a
// second number (on Redis, homed in another hash tag than the message's
// number: the linked steps) verifies in the first call; a wrong code
// there records nothing in the first call.
func ownFirstOtherNumber(e *env) {
	s := e.routed("k", Alice, "482913", smsTo, smsTo2)
	wrong := on(matcher.ChannelSMS, To2, Alice, "111111")
	if o := e.ingestOpt(wrong, ownFirst); !o.NeedsBudget || o.Duplicate {
		e.t.Fatalf("wrong code, first call: %+v", o)
	}
	if got := e.get(s.ID); got.Attempts != 0 {
		e.t.Fatalf("the first call counted an attempt: %+v", got)
	}
	if o := e.ingest(wrong); o.Kind != matcher.Attempted || o.SessionID != s.ID {
		e.t.Fatalf("wrong code, second call: %+v", o)
	}
	right := on(matcher.ChannelSMS, To2, Alice, "482913")
	if o := e.ingestOpt(right, ownFirst); o.Kind != matcher.Matched || o.SessionID != s.ID || o.NeedsBudget {
		e.t.Fatalf("own match on the second number: %+v", o)
	}
	if o := e.ingestOpt(right, ownFirst); !o.Duplicate || o.Kind != matcher.Matched {
		e.t.Fatalf("own match redelivered: %+v", o)
	}
	if got := e.get(s.ID); got.Status != matcher.Verified || got.Attempts != 1 {
		e.t.Fatalf("session = %+v", got)
	}
}
