package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
)

// TestEntrySpeaksOnlyForItsNumbers: correctly signed messages from an
// Android phone entry (smsgate, HMAC) and an HTTP Basic entry (bandwidth)
// to Twilio's number verify nothing, count no attempt and are acknowledged
// as wrong_provider; a number outside the pool is unknown_number; each
// entry still verifies on its own numbers.
func TestEntrySpeaksOnlyForItsNumbers(t *testing.T) {
	y := strings.Replace(testYAML, "numbers:\n",
		"  - {name: phone, type: smsgate, signing_key: phone-SECRETVALUE-7}\n"+
			"  - {name: bw, type: bandwidth, username: u, password: bw-SECRETVALUE-8}\n"+
			"numbers:\n  - {number: \"+14155550199\", provider: phone}\n  - {number: \"+14155550198\", provider: bw}\n", 1)
	h := newHarness(t, y)
	const sender, twilioNumber = "+14155550123", "+14155550100"
	v := h.mustCreate(`{"number": "` + sender + `", "to": "` + twilioNumber + `"}`)
	capture := h.mustCreate(`{"to": "` + twilioNumber + `"}`)
	onPhone := h.mustCreate(`{"number": "+14155550124", "to": "+14155550199"}`)
	twilioAck := `<?xml version="1.0" encoding="UTF-8"?><Response/>`

	cases := []struct {
		name, entry, from, to, outcome, ack string
		texts                               []string
	}{
		{"android phone to twilio's number", "phone", sender, twilioNumber, "wrong_provider", "",
			[]string{v["code"].(string), capture["code"].(string), "000000"}},
		{"http basic to twilio's number", "bw", sender, twilioNumber, "wrong_provider", "",
			[]string{v["code"].(string), capture["code"].(string), "000000"}},
		{"twilio to the phone's number", "twilio", "+14155550124", "+14155550199", "wrong_provider", twilioAck,
			[]string{onPhone["code"].(string)}},
		{"outside the pool", "bw", sender, "+14155550111", "unknown_number", "",
			[]string{v["code"].(string), capture["code"].(string)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, text := range tc.texts {
				w := h.send(h.signed(tc.entry, adapters.Inbound{From: tc.from, To: tc.to, Text: text}))
				if w.Code != 200 || w.Body.String() != tc.ack {
					t.Fatalf("%s = %d %q", text, w.Code, w.Body)
				}
			}
		})
	}
	for _, s := range []map[string]any{v, capture, onPhone} {
		if got := h.get(s["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
			t.Fatalf("session touched by another entry: %v", got)
		}
	}
	m := h.do("GET", "/metrics", "", nil, nil).Body.String()
	for _, want := range []string{
		`mogate_messages_total{channel="sms",outcome="wrong_provider",provider="phone"} 3`,
		`mogate_messages_total{channel="sms",outcome="wrong_provider",provider="bw"} 3`,
		`mogate_messages_total{channel="sms",outcome="wrong_provider",provider="twilio"} 1`,
		`mogate_messages_total{channel="sms",outcome="unknown_number",provider="bw"} 2`,
		`mogate_webhooks_total{provider="phone",result="accepted"} 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `outcome="unmatched"`) || strings.Contains(m, `outcome="attempt"`) {
		t.Error("the matcher saw a message it should not have")
	}
	// Logged with the entry, the owner and the masked number.
	var logged bool
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["outcome"] != "wrong_provider" || e["provider"] != "phone" {
			continue
		}
		logged = true
		if e["to"] != "+14*******00" || e["owner"] != "twilio" || e["level"] != "WARN" {
			t.Errorf("log = %s", line)
		}
	}
	if !logged {
		t.Errorf("wrong_provider not logged:\n%s", h.logs)
	}

	// The right entries still verify.
	for _, ok := range []struct {
		entry, from, to string
		s               map[string]any
	}{
		{"twilio", sender, twilioNumber, v},
		{"twilio", "+14155550125", twilioNumber, capture},
		{"phone", "+14155550124", "+14155550199", onPhone},
	} {
		if w := h.send(h.signed(ok.entry, adapters.Inbound{From: ok.from, To: ok.to, Text: ok.s["code"].(string)})); w.Code != 200 {
			t.Fatalf("%s = %d %s", ok.entry, w.Code, w.Body)
		}
		if got := h.get(ok.s["id"].(string)); got["status"] != "verified" || got["provider"] != ok.entry {
			t.Fatalf("%s did not verify its own session: %v", ok.entry, got)
		}
	}
	bwSession := h.mustCreate(`{"number": "+14155550126", "to": "+14155550198"}`)
	h.send(h.signed("bw", adapters.Inbound{From: "+14155550126", To: "+14155550198", Text: bwSession["code"].(string)}))
	if got := h.get(bwSession["id"].(string)); got["status"] != "verified" {
		t.Fatalf("bandwidth on its own number: %v", got)
	}
}
