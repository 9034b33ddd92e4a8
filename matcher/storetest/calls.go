package storetest

import (
	"time"

	"github.com/mogate/mogate/matcher"
)

// callTo1 is a call route on To, the first number.
var callTo1 = matcher.Route{Channel: matcher.ChannelCall, To: To}

// callUnattested: a call without attestation A verifies nothing: it is
// recorded as processed (outcome Unmatched), counts no attempt and makes
// no message.unmatched event; a redelivery of it now claiming A is a
// duplicate and verifies nothing either. A fresh attested call then
// verifies.
func callUnattested(e *env) {
	for _, tc := range []struct {
		name   string
		routes []matcher.Route
	}{
		{"call route on the home number", []matcher.Route{callTo1}},
		{"call route on a second number", []matcher.Route{smsTo, callTo}},
	} {
		s := e.routed("k", Alice, "482913", tc.routes...)
		to := tc.routes[len(tc.routes)-1].To
		drain(e.s.Events())
		for _, at := range []string{"", "B", "C"} {
			call := on(matcher.ChannelCall, to, Alice, "")
			call.Attestation = at
			o := e.ingestOpt(call, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
			if o.Kind != matcher.Unmatched || o.Duplicate || o.SessionID != "" || o.CaptureTried {
				e.t.Fatalf("%s: call attested %q: %+v", tc.name, at, o)
			}
			// An attacker replays the captured request with attestation A.
			call.Attestation = "A"
			again := e.ingestOpt(call, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
			if again.Kind != matcher.Unmatched || !again.Duplicate {
				e.t.Fatalf("%s: call attested %q, replayed as A: %+v", tc.name, at, again)
			}
		}
		if got := e.get(s.ID); got.Status != matcher.Pending || got.Attempts != 0 {
			e.t.Fatalf("%s: unattested calls touched %+v", tc.name, got)
		}
		if evs := e.claim(); len(evs) != 0 {
			e.t.Fatalf("%s: unattested calls made events %+v", tc.name, evs)
		}
		call := on(matcher.ChannelCall, to, Alice, "")
		call.Attestation = "A"
		if o := e.ingest(call); o.Kind != matcher.Matched || o.SessionID != s.ID {
			e.t.Fatalf("%s: attested call: %+v", tc.name, o)
		}
		e.ack(e.claim()...)
	}
}

// callAmbiguous: a call verifies the pending expected-sender session with
// a call route on (To, From) only when it is the only one, across API
// keys; with two it verifies neither (outcome Unmatched, recorded, no
// attempt), whichever tags the sessions live in.
func callAmbiguous(e *env) {
	for _, tc := range []struct {
		name   string
		sender string
		first  []matcher.Route
	}{
		{"both on the call's number", Mallet, []matcher.Route{callTo}},
		{"one through a second route", Alice, []matcher.Route{smsTo, callTo}},
	} {
		a := e.routed("k1", tc.sender, "111111", tc.first...)
		e.c.Add(time.Millisecond)
		b := e.routed("k2", tc.sender, "222222", callTo)
		call := on(matcher.ChannelCall, To2, tc.sender, "")
		call.Attestation = "A"
		if o := e.ingest(call); o.Kind != matcher.Unmatched || o.Duplicate || o.SessionID != "" {
			e.t.Fatalf("%s: call with two candidates: %+v", tc.name, o)
		}
		if o := e.ingest(call); o.Kind != matcher.Unmatched || !o.Duplicate {
			e.t.Fatalf("%s: redelivered: %+v", tc.name, o)
		}
		for _, id := range []string{a.ID, b.ID} {
			if got := e.get(id); got.Status != matcher.Pending || got.Attempts != 0 {
				e.t.Fatalf("%s: an ambiguous call touched %+v", tc.name, got)
			}
		}
		// One left: the next call verifies it.
		if _, err := e.s.Cancel(e.ctx, a.ID); err != nil {
			e.t.Fatal(err)
		}
		next := on(matcher.ChannelCall, To2, tc.sender, "")
		next.Attestation = "A"
		if o := e.ingest(next); o.Kind != matcher.Matched || o.SessionID != b.ID {
			e.t.Fatalf("%s: call with one candidate: %+v", tc.name, o)
		}
	}
}

// ownBeforeCapture: a message through a session's second route, on
// another number, tries the sender's own sessions before capture
// sessions: a verification of an own session has not tried capture (no
// guess spent), and a text holding both codes verifies the own session.
func ownBeforeCapture(e *env) {
	s := e.routed("k", Alice, "482913", smsTo, waTo2)
	o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "482913"))
	if o.Kind != matcher.Matched || o.SessionID != s.ID || o.CaptureTried || o.CaptureRefused {
		e.t.Fatalf("own code through the second route: %+v", o)
	}
	own := e.routed("k", Alice, "111111", smsTo, waTo2)
	capture := e.createReq(matcher.CreateRequest{Key: "k", To: To2, Routes: []matcher.Route{waTo2}, TTL: 10 * time.Minute})
	o = e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "111111\n"+capture.Code))
	if o.Kind != matcher.Matched || o.SessionID != own.ID || o.CaptureTried {
		e.t.Fatalf("text with both codes: %+v, want own session %s", o, own.ID)
	}
	if got := e.get(capture.ID); got.Status != matcher.Pending {
		e.t.Fatalf("capture session = %+v", got)
	}
}
