package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters/twilio"
)

// TestBuildSignedWithout: a request with signed_without is sent with the
// parameters and signed without them; naming a parameter the body lacks
// is an error, not a silently different fixture.
func TestBuildSignedWithout(t *testing.T) {
	ad, err := twilio.New(twilio.Config{AuthToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{PublicURL: "https://sms.example.com"}
	r := Request{Method: "POST", Path: "/webhooks/twilio", Body: "CallSid=CA1&From=%2B1&StirVerstat=TN-Validation-Passed-A&To=%2B2", SignedWithout: []string{"StirVerstat"}}
	req, err := build(tg, r, vars{}, ad, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(req.Body), "StirVerstat=") {
		t.Errorf("sent without the parameter: %s", req.Body)
	}
	want := twilio.Signature("tok", "https://sms.example.com/webhooks/twilio", map[string][]string{"CallSid": {"CA1"}, "From": {"+1"}, "To": {"+2"}})
	if got := req.Header.Get(twilio.SignatureHeader); got != want {
		t.Errorf("signature %s, want the one over the form without StirVerstat %s", got, want)
	}
	r.SignedWithout = []string{"CallToken"}
	if _, err := build(tg, r, vars{}, ad, time.Now()); err == nil || !strings.Contains(err.Error(), "CallToken") {
		t.Errorf("signed_without naming a missing parameter: %v", err)
	}
}
