package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
)

// TestCallsAreRejectedAndOnlyAttestedCount: every voice request is answered
// with the <Reject> document (attested or not, matched or not, redelivered);
// a call without attestation A is caller_unattested: counted, recorded (its
// CallSid deduplicated), the session untouched, no attempt — and a copy of
// it that claims attestation A later (a captured request with StirVerstat
// added) is a duplicate that verifies nothing. An attested call verifies
// the caller's call session without a code.
func TestCallsAreRejectedAndOnlyAttestedCount(t *testing.T) {
	yaml := strings.Replace(testYAML, `{number: "+14155550100", provider: twilio}`, `{number: "+14155550100", provider: twilio, channels: [sms, call]}`, 1)
	h := newHarness(t, yaml)
	v := h.mustCreate(`{"number": "+14155550123", "channels": ["sms", "call"]}`)
	id := v["id"].(string)
	call := func(sid, att string) {
		t.Helper()
		for range 2 { // the delivery and a redelivery get the same answer
			w := h.send(h.signed("twilio", adapters.Inbound{Channel: adapters.ChannelCall, MessageID: sid, From: "+14155550123", To: "+14155550100", Attestation: att}))
			if w.Code != 200 || w.Header().Get("Content-Type") != "text/xml" || w.Body.String() != adapters.RejectCall {
				t.Fatalf("call %s (attestation %q) answered %d %q %q", sid, att, w.Code, w.Header().Get("Content-Type"), w.Body)
			}
		}
	}
	for i, att := range []string{"B", "C", ""} {
		call(fmt.Sprintf("CAunattested%d", i), att)
	}
	metrics := h.do("GET", "/metrics", "", nil, nil).Body.String()
	if !strings.Contains(metrics, `mogate_messages_total{channel="call",outcome="caller_unattested",provider="twilio"} 3`) ||
		!strings.Contains(metrics, `mogate_messages_total{channel="call",outcome="duplicate",provider="twilio"} 3`) {
		t.Errorf("caller_unattested not counted 3 times, with 3 duplicates:\n%s", grep(metrics, "mogate_messages_total"))
	}
	if got := h.scrapeValue("mogate_processed_ids"); got != "3" {
		t.Errorf("unattested calls not recorded: mogate_processed_ids = %s", got)
	}
	if got := h.get(id); got["status"] != "pending" || got["attempts"] != float64(0) {
		t.Errorf("after unattested calls: %v", got)
	}
	if !strings.Contains(h.logs.String(), "caller_unattested") {
		t.Error("caller_unattested not logged")
	}
	// The same CallSid now claiming A: a duplicate, nothing verified.
	call("CAunattested2", "A")
	if got := h.get(id); got["status"] != "pending" {
		t.Fatalf("an unattested CallSid replayed as attested verified the session: %v", got)
	}
	// Attested A: verifies the call session; the redelivery is a duplicate.
	call("CAattested", "A")
	if got := h.get(id); got["status"] != "verified" || got["channel"] != "call" || got["attempts"] != float64(0) {
		t.Fatalf("after an attested call: %v", got)
	}
	metrics = h.do("GET", "/metrics", "", nil, nil).Body.String()
	if !strings.Contains(metrics, `mogate_messages_total{channel="call",outcome="verified",provider="twilio"} 1`) ||
		!strings.Contains(metrics, `mogate_messages_total{channel="call",outcome="duplicate",provider="twilio"} 6`) {
		t.Errorf("the attested call and the redeliveries:\n%s", grep(metrics, "mogate_messages_total"))
	}
	// A message on the same entry keeps its empty TwiML.
	w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: "hello"}))
	if w.Body.String() != `<?xml version="1.0" encoding="UTF-8"?><Response/>` {
		t.Errorf("an SMS answered %q", w.Body)
	}
	h.checkNoLeak()
}

func grep(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
