package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/matcher"
)

// channelCases are the cases of channels, routes and signals
// (docs/matching.md).
var channelCases = []suiteCase{
	{"RoutesDefault", routesDefault},
	{"RoutesBadInput", routesBadInput},
	{"RouteMatchesByChannel", routeMatchesByChannel},
	{"CallVerifiesExpectedSender", callVerifies},
	{"TwoRoutesTwoNumbers", twoRoutesTwoNumbers},
	{"ConcurrentRedeliveriesOnSecondRoute", concurrentOnSecondRoute},
	{"CaptureTwoRoutes", captureTwoRoutes},
	{"SupersedeSharedRoute", supersedeSharedRoute},
	{"SignalsPersisted", signalsPersisted},
	{"SenderSessions24h", senderSessions24h},
	{"RejectReason", rejectReason},
	{"CallUnattested", callUnattested},
	{"CallAmbiguous", callAmbiguous},
	{"OwnBeforeCaptureOnSecondRoute", ownBeforeCapture},
}

// on is a message on channel c to number to, from from.
func on(c, to, from, text string) matcher.Message {
	m := sms(from, text)
	m.Channel, m.To = c, to
	if c == matcher.ChannelCall {
		m.MessageID = fmt.Sprint("CA", msgSeq.Add(1))
	}
	return m
}

func (e *env) routed(key, number, code string, routes ...matcher.Route) matcher.Session {
	e.t.Helper()
	return e.createReq(matcher.CreateRequest{Key: key, Number: number, Code: code, To: routes[0].To, Routes: routes, TTL: 10 * time.Minute})
}

func (e *env) pendingIDs(sender string, tos ...string) []string {
	e.t.Helper()
	got, err := e.s.PendingFor(e.ctx, sender, tos)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, s := range got {
		ok := false
		for _, to := range tos {
			ok = ok || slices.ContainsFunc(s.Routes, func(r matcher.Route) bool { return r.To == to })
		}
		if s.Status != matcher.Pending || s.Number != sender || !ok {
			e.t.Fatalf("PendingFor(%s, %v) returned %+v", sender, tos, s)
		}
		out = append(out, s.ID)
	}
	return out
}

func (e *env) pendingByNumberIs(step string, want map[string]int) {
	e.t.Helper()
	got, err := e.s.PendingByNumber(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("%s: pending by number %v, want %v", step, got, want)
	}
}

var (
	smsTo  = matcher.Route{Channel: matcher.ChannelSMS, To: To}
	smsTo2 = matcher.Route{Channel: matcher.ChannelSMS, To: To2}
	waTo   = matcher.Route{Channel: matcher.ChannelWhatsApp, To: To}
	waTo2  = matcher.Route{Channel: matcher.ChannelWhatsApp, To: To2}
	callTo = matcher.Route{Channel: matcher.ChannelCall, To: To2}
)

// routesDefault: a create without routes has the one route {sms, To}, and
// an SMS (channel "" or "sms") verifies it through that route.
func routesDefault(e *env) {
	s := e.create("k", Alice, "482913")
	if !slices.Equal(s.Routes, []matcher.Route{smsTo}) || !slices.Equal(e.get(s.ID).Routes, []matcher.Route{smsTo}) {
		e.t.Fatalf("routes of a create without routes: %v", e.get(s.ID).Routes)
	}
	if o := e.ingest(sms(Alice, "482913")); o.Kind != matcher.Matched || o.SessionID != s.ID {
		e.t.Fatalf("sms: %+v", o)
	}
	if got := e.get(s.ID); got.Via != smsTo {
		e.t.Fatalf("via = %+v", got.Via)
	}
	s2 := e.create("k", Alice, "111111")
	if o := e.ingest(on(matcher.ChannelSMS, To, Alice, "111111")); o.Kind != matcher.Matched || o.SessionID != s2.ID {
		e.t.Fatalf("channel sms: %+v", o)
	}
}

// routesBadInput: invalid routes are refused and create nothing.
func routesBadInput(e *env) {
	for name, rs := range map[string][]matcher.Route{
		"first not To":    {smsTo2},
		"unknown channel": {smsTo, {Channel: "imessage", To: To2}},
		"twice":           {smsTo, smsTo},
	} {
		_, _, err := e.s.Create(e.ctx, matcher.CreateRequest{Key: "k", Number: Alice, Code: "482913", To: To, Routes: rs, TTL: time.Minute})
		if !errors.Is(err, matcher.ErrInvalidRoutes) {
			e.t.Errorf("%s: %v", name, err)
		}
	}
	e.pendingByNumberIs("after refused creates", map[string]int{})
	if got := e.pendingIDs(Alice, To, To2); len(got) != 0 {
		e.t.Fatalf("refused creates left %v", got)
	}
}

// routeMatchesByChannel: a message considers only sessions with a route
// {its channel, its number}; on another channel it does not even count an
// attempt.
func routeMatchesByChannel(e *env) {
	wa := e.routed("k", Alice, "482913", waTo2)
	smsOnly := e.routed("k", Mallet, "111111", smsTo)
	if o := e.ingest(on(matcher.ChannelSMS, To2, Alice, "482913")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("sms on a whatsapp route: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelSMS, To2, Alice, "000000")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("wrong code by sms on a whatsapp route: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelWhatsApp, To, Mallet, "111111")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("whatsapp on an sms route: %+v", o)
	}
	if got := e.get(wa.ID); got.Status != matcher.Pending || got.Attempts != 0 {
		e.t.Fatalf("whatsapp session touched by sms: %+v", got)
	}
	if got := e.get(smsOnly.ID); got.Status != matcher.Pending || got.Attempts != 0 {
		e.t.Fatalf("sms session touched by whatsapp: %+v", got)
	}
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "000000")); o.Kind != matcher.Attempted || o.SessionID != wa.ID {
		e.t.Fatalf("wrong code on its channel: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "482913")); o.Kind != matcher.Matched || o.SessionID != wa.ID {
		e.t.Fatalf("whatsapp on its route: %+v", o)
	}
	if got := e.get(wa.ID); got.Status != matcher.Verified || got.Via != waTo2 || got.VerifiedNumber != Alice || got.Attempts != 1 {
		e.t.Fatalf("verified over whatsapp: %+v", got)
	}
}

// callVerifies: a call verifies, without a code, only the pending
// expected-sender session of (To, From) with a call route on To; it never
// counts an attempt, never matches a capture session, and is deduplicated
// by its id like a message.
func callVerifies(e *env) {
	s := e.routed("k", Alice, "482913", smsTo, callTo)
	noCall := e.routed("k", Mallet, "111111", smsTo2)
	capture := e.createReq(matcher.CreateRequest{Key: "k", To: To2, TTL: 10 * time.Minute})
	if o := e.ingest(on(matcher.ChannelCall, To2, Mallet, "")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("call from a sender without a call route: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelCall, To2, Mallet, capture.Code)); o.Kind != matcher.Unmatched {
		e.t.Fatalf("call carrying a capture code: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelCall, To, Alice, "")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("call to the sms route's number: %+v", o)
	}
	for _, id := range []string{s.ID, noCall.ID, capture.ID} {
		if got := e.get(id); got.Status != matcher.Pending || got.Attempts != 0 {
			e.t.Fatalf("a call touched %+v", got)
		}
	}
	call := on(matcher.ChannelCall, To2, Alice, "")
	call.Attestation = "A"
	o := e.ingest(call)
	if o.Kind != matcher.Matched || o.SessionID != s.ID || o.Duplicate {
		e.t.Fatalf("attested call: %+v", o)
	}
	if again := e.ingest(call); again.Kind != matcher.Matched || again.SessionID != s.ID || !again.Duplicate {
		e.t.Fatalf("redelivered call: %+v", again)
	}
	got := e.get(s.ID)
	if got.Status != matcher.Verified || got.Via != callTo || got.VerifiedNumber != Alice || got.Signals.Attestation != "A" ||
		got.MessageID != call.MessageID || got.Attempts != 0 {
		e.t.Fatalf("verified by call: %+v", got)
	}
	if o := e.ingest(sms(Alice, "482913")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("sms after the call verified: %+v", o)
	}
	if got := e.get(capture.ID); got.Status != matcher.Pending {
		e.t.Fatalf("capture session after calls: %+v", got)
	}
}

// twoRoutesTwoNumbers: a session with routes on two numbers is found on
// either, counted on both, verified by either; then neither finds it.
func twoRoutesTwoNumbers(e *env) {
	a := e.routed("k", Alice, "482913", smsTo, waTo2)
	if got := e.pendingIDs(Alice, To2); !slices.Equal(got, []string{a.ID}) {
		e.t.Fatalf("pending on the second route's number = %v", got)
	}
	if got := e.pendingIDs(Alice, To, To2); !slices.Equal(got, []string{a.ID}) {
		e.t.Fatalf("pending on both numbers = %v, want it once", got)
	}
	e.pendingByNumberIs("created", map[string]int{To: 1, To2: 1})
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "482913")); o.Kind != matcher.Matched || o.SessionID != a.ID {
		e.t.Fatalf("whatsapp on the second number: %+v", o)
	}
	if o := e.ingest(sms(Alice, "482913")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("sms on the first number after: %+v", o)
	}
	if got := e.get(a.ID); got.Status != matcher.Verified || got.Via != waTo2 || got.Attempts != 0 {
		e.t.Fatalf("a = %+v", got)
	}
	if got := e.pendingIDs(Alice, To, To2); len(got) != 0 {
		e.t.Fatalf("pending after verify = %v", got)
	}
	e.pendingByNumberIs("verified", map[string]int{})

	// The other way round: the first route verifies, the second then
	// finds nothing, not even for an attempt.
	b := e.routed("k", Alice, "111111", smsTo, waTo2)
	if o := e.ingest(sms(Alice, "111111")); o.Kind != matcher.Matched || o.SessionID != b.ID {
		e.t.Fatalf("sms on the first number: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "111111")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("whatsapp after: %+v", o)
	}
	if got := e.get(b.ID); got.Status != matcher.Verified || got.Via != smsTo {
		e.t.Fatalf("b = %+v", got)
	}
	// A wrong code on the second number counts an attempt; cancel and
	// expiry free both numbers.
	c := e.routed("k", Alice, "222222", smsTo, waTo2)
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "000000")); o.Kind != matcher.Attempted || o.SessionID != c.ID {
		e.t.Fatalf("wrong code on the second number: %+v", o)
	}
	if _, err := e.s.Cancel(e.ctx, c.ID); err != nil {
		e.t.Fatal(err)
	}
	e.pendingByNumberIs("cancelled", map[string]int{})
	d := e.routed("k", Alice, "333333", smsTo, waTo2)
	e.c.Add(11 * time.Minute)
	if o := e.ingest(on(matcher.ChannelWhatsApp, To2, Alice, "333333")); o.Kind != matcher.Unmatched {
		e.t.Fatalf("after expiry: %+v", o)
	}
	if got := e.get(d.ID); got.Status != matcher.Expired {
		e.t.Fatalf("d = %+v", got)
	}
}

// captureTwoRoutes: a capture session is found by its code on either route
// number, once.
func captureTwoRoutes(e *env) {
	s := e.createReq(matcher.CreateRequest{Key: "k", To: To, Routes: []matcher.Route{smsTo, waTo2}, TTL: 10 * time.Minute})
	if o := e.ingest(on(matcher.ChannelSMS, To2, Mallet, "Code "+s.Code)); o.Kind != matcher.Unmatched {
		e.t.Fatalf("capture code by sms on the whatsapp number: %+v", o)
	}
	o := e.ingest(on(matcher.ChannelWhatsApp, To2, Mallet, "Code "+s.Code))
	if o.Kind != matcher.Matched || o.SessionID != s.ID || !o.CaptureTried {
		e.t.Fatalf("capture code by whatsapp: %+v", o)
	}
	if o := e.ingest(on(matcher.ChannelSMS, To, Alice, "Code "+s.Code)); o.Kind != matcher.Unmatched {
		e.t.Fatalf("capture code on the other route after: %+v", o)
	}
	if got := e.get(s.ID); got.Status != matcher.Verified || got.VerifiedNumber != Mallet || got.Via != waTo2 {
		e.t.Fatalf("capture session = %+v", got)
	}
	e.pendingByNumberIs("verified", map[string]int{})
}

// supersedeSharedRoute: a new expected-sender session of a key cancels that
// key's pending sessions for the same sender that share a route number, and
// only those.
func supersedeSharedRoute(e *env) {
	s1 := e.routed("k", Alice, "111111", smsTo)
	other := e.routed("k2", Alice, "999999", smsTo2)
	s2 := e.routed("k", Alice, "222222", smsTo2, waTo) // shares To with s1
	if got := e.get(s1.ID); got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		e.t.Fatalf("s1 = %+v", got)
	}
	if got := e.get(other.ID); got.Status != matcher.Pending {
		e.t.Fatalf("another key's session = %+v", got)
	}
	s3 := e.routed("k", Alice, "333333", smsTo2) // shares To2 with s2
	if got := e.get(s2.ID); got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		e.t.Fatalf("s2 = %+v", got)
	}
	s4 := e.routed("k", Alice, "444444", waTo) // shares nothing with s3
	if got := e.get(s3.ID); got.Status != matcher.Pending {
		e.t.Fatalf("s3, sharing no number with s4 = %+v", got)
	}
	if got := e.pendingIDs(Alice, To, To2); !slices.Equal(got, []string{s4.ID, other.ID, s3.ID}) {
		e.t.Fatalf("pending = %v, want [%s %s %s]", got, s4.ID, other.ID, s3.ID)
	}
	e.pendingByNumberIs("after supersedes", map[string]int{To: 1, To2: 2})
	if o := e.ingest(on(matcher.ChannelWhatsApp, To, Alice, "222222")); o.Kind != matcher.Attempted || o.SessionID != s4.ID {
		e.t.Fatalf("superseded code: %+v", o)
	}
	// A session whose first route is on To, superseded by one on To2
	// alone: found through its second route.
	m1 := e.routed("k", Mallet, "555555", smsTo, waTo2)
	m2 := e.routed("k", Mallet, "666666", smsTo2)
	if got := e.get(m1.ID); got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		e.t.Fatalf("m1 = %+v", got)
	}
	if got := e.pendingIDs(Mallet, To, To2); !slices.Equal(got, []string{m2.ID}) {
		e.t.Fatalf("pending for the second sender = %v, want [%s]", got, m2.ID)
	}
}

// signalsPersisted: what the message told of its sender, and its route,
// come back in Get, Wait and the event.
func signalsPersisted(e *env) {
	s := e.createReq(matcher.CreateRequest{Key: "k", Number: Alice, Code: "482913", To: To, Routes: []matcher.Route{smsTo, waTo2},
		ClientCountry: "DE", TTL: 10 * time.Minute})
	if got := e.get(s.ID); got.ClientCountry != "DE" || got.Via != (matcher.Route{}) || got.Signals != (matcher.Signals{}) {
		e.t.Fatalf("pending session = %+v", got)
	}
	drain(e.s.Events())
	msg := on(matcher.ChannelWhatsApp, To2, Alice, "482913")
	msg.LineType, msg.Carrier, msg.SenderCountry, msg.Forwarded = "mobile", "T-Mobile USA", "US", true
	if o := e.ingest(msg); o.Kind != matcher.Matched {
		e.t.Fatalf("match: %+v", o)
	}
	want := matcher.Signals{LineType: "mobile", Carrier: "T-Mobile USA", SenderCountry: "US", Forwarded: true}
	check := func(where string, got matcher.Session) {
		e.t.Helper()
		if got.Signals != want || got.Via != waTo2 || got.ClientCountry != "DE" || !slices.Equal(got.Routes, []matcher.Route{smsTo, waTo2}) {
			e.t.Fatalf("%s: signals %+v via %+v client country %q routes %v", where, got.Signals, got.Via, got.ClientCountry, got.Routes)
		}
	}
	check("Get", e.get(s.ID))
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	w, err := e.s.Wait(ctx, s.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	check("Wait", w)
	woken(e, "verify")
	evs := e.claim()
	if len(evs) != 1 || evs[0].Session == nil {
		e.t.Fatalf("events = %+v", evs)
	}
	check("event", *evs[0].Session)
}

// senderSessions24h counts the sessions verified for the same verified
// sender under the same key in the 24 h before.
func senderSessions24h(e *env) {
	verify := func(key, code string, routes ...matcher.Route) matcher.Session {
		e.t.Helper()
		s := e.routed(key, Alice, code, routes...)
		if o := e.ingest(on(routes[0].Channel, routes[0].To, Alice, code)); o.Kind != matcher.Matched || o.SessionID != s.ID {
			e.t.Fatalf("verify %s: %+v", code, o)
		}
		return e.get(s.ID)
	}
	if got := verify("k", "111111", smsTo).Signals.SenderSessions24h; got != 0 {
		e.t.Fatalf("first session: %d", got)
	}
	e.c.Add(time.Hour)
	if got := verify("k", "222222", waTo2).Signals.SenderSessions24h; got != 1 {
		e.t.Fatalf("second session, on another number: %d", got)
	}
	if got := verify("k2", "333333", smsTo).Signals.SenderSessions24h; got != 0 {
		e.t.Fatalf("another key's session: %d", got)
	}
	// A capture session verified by the same sender counts too.
	c := e.createReq(matcher.CreateRequest{Key: "k", To: To2, TTL: 10 * time.Minute})
	if o := e.ingest(on(matcher.ChannelSMS, To2, Alice, c.Code)); o.Kind != matcher.Matched {
		e.t.Fatalf("capture: %+v", o)
	}
	if got := e.get(c.ID).Signals.SenderSessions24h; got != 2 {
		e.t.Fatalf("capture session: %d", got)
	}
	e.c.Add(23*time.Hour + 30*time.Minute) // the first is now older than 24 h
	if got := verify("k", "444444", smsTo).Signals.SenderSessions24h; got != 2 {
		e.t.Fatalf("a day later: %d, want 2", got)
	}
}

// rejectReason: a message that would verify a session but carries a
// RejectReason fails it with that reason and its event; a wrong code with
// one is an ordinary attempt.
func rejectReason(e *env) {
	s := e.create("k", Alice, "482913")
	bad := sms(Alice, "000000")
	bad.RejectReason, bad.LineType = matcher.ReasonLineTypeRejected, "voip"
	if o := e.ingest(bad); o.Kind != matcher.Attempted || o.SessionID != s.ID {
		e.t.Fatalf("wrong code with a reject reason: %+v", o)
	}
	drain(e.s.Events())
	msg := sms(Alice, "482913")
	msg.RejectReason, msg.LineType, msg.Carrier = matcher.ReasonLineTypeRejected, "voip", "Bandwidth"
	o := e.ingest(msg)
	if o.Kind != matcher.Exhausted || o.SessionID != s.ID {
		e.t.Fatalf("rejected line type: %+v", o)
	}
	got := e.get(s.ID)
	if got.Status != matcher.Failed || got.Reason != matcher.ReasonLineTypeRejected || got.Via != smsTo ||
		got.Signals.LineType != "voip" || got.Signals.Carrier != "Bandwidth" || got.VerifiedNumber != "" || got.MessageID != msg.MessageID {
		e.t.Fatalf("rejected session = %+v", got)
	}
	woken(e, "reject")
	evs := e.claim()
	if len(evs) != 1 || evs[0].Type() != "verification.failed" || evs[0].Session.Reason != matcher.ReasonLineTypeRejected {
		e.t.Fatalf("events = %+v", evs)
	}
	// It was not a verification: the sender's next session counts none.
	s2 := e.create("k", Alice, "111111")
	if o := e.ingest(sms(Alice, "111111")); o.Kind != matcher.Matched {
		e.t.Fatalf("next: %+v", o)
	}
	if got := e.get(s2.ID).Signals.SenderSessions24h; got != 0 {
		e.t.Fatalf("sender sessions after a rejected one: %d", got)
	}
	// A capture session is rejected the same way.
	c := e.createReq(matcher.CreateRequest{Key: "k", To: To, TTL: 10 * time.Minute})
	cm := sms(Mallet, c.Code)
	cm.RejectReason = matcher.ReasonLineTypeRejected
	if o := e.ingest(cm); o.Kind != matcher.Exhausted || o.SessionID != c.ID {
		e.t.Fatalf("rejected capture: %+v", o)
	}
	if got := e.get(c.ID); got.Status != matcher.Failed || got.Reason != matcher.ReasonLineTypeRejected {
		e.t.Fatalf("rejected capture session = %+v", got)
	}
}

// concurrentOnSecondRoute: concurrent deliveries of one message on a
// session's second route number count one attempt, or verify once, and
// all but one are duplicates.
func concurrentOnSecondRoute(e *env) {
	s := e.routed("k", Alice, "482913", smsTo, waTo2)
	deliver := func(msg matcher.Message, want matcher.OutcomeKind) {
		e.t.Helper()
		var wg sync.WaitGroup
		var dups atomic.Int32
		for range 8 {
			wg.Go(func() {
				o, err := e.s.Ingest(e.ctx, msg, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
				if err != nil || o.SessionID != s.ID || o.Kind != want {
					e.t.Errorf("Ingest(%q) = %+v %v", msg.Text, o, err)
				}
				if o.Duplicate {
					dups.Add(1)
				}
			})
		}
		wg.Wait()
		if dups.Load() != 7 {
			e.t.Fatalf("%q: %d duplicates of 8 deliveries", msg.Text, dups.Load())
		}
	}
	deliver(on(matcher.ChannelWhatsApp, To2, Alice, "111111"), matcher.Attempted)
	if got := e.get(s.ID); got.Attempts != 1 {
		e.t.Fatalf("attempts = %d", got.Attempts)
	}
	deliver(on(matcher.ChannelWhatsApp, To2, Alice, "482913"), matcher.Matched)
	if got := e.get(s.ID); got.Status != matcher.Verified || got.Attempts != 1 || got.Via != waTo2 {
		e.t.Fatalf("session = %+v", got)
	}
}
