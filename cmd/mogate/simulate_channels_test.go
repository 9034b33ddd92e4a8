package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestSimulateChannels: sms simulate --channel picks the pending session's
// route on that channel and signs as its number's provider would: a Meta
// message (the number's phone_number_id) or a Twilio whatsapp: form for a
// whatsapp route, a Twilio voice request with the given attestation for a call route. An
// attestation B call verifies nothing; A does. Bad values are usage
// errors and send nothing. (store: redis, which keeps routes.)
func TestSimulateChannels(t *testing.T) {
	addr := freeAddr(t)
	base := "http://" + addr
	cfgPath := filepath.Join(t.TempDir(), "mogate.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(`listen: %s
public_url: %s
store: redis
redis_url: %s
api_keys: [{name: shop, app_name: Acme, key: %s}]
providers:
  - {name: twilio, type: twilio, auth_token: %s}
  - {name: meta, type: whatsapp, app_secret: meta-app-secret-0123, verify_token: meta-verify-token-0123}
numbers:
  - {number: "+14155550100", provider: twilio, channels: [sms, call, whatsapp], countries: ["*"]}
  - {number: "+15550984277", provider: meta, phone_number_id: "114896151713920", countries: ["*"]}
limits: {creates_per_number_per_hour: 0}
`, addr, base, redistest.Start(t).URL(), crashKey, crashToken))
	startServer(t, cfgPath, base)
	create := func(body string) (id, code string) {
		t.Helper()
		status, b := call(t, "POST", base+"/v1/verifications", crashKey, body)
		var v struct{ ID, Code string }
		if status != 201 || json.Unmarshal([]byte(b), &v) != nil {
			t.Fatalf("create = %d %s", status, b)
		}
		return v.ID, v.Code
	}
	simulate := func(args ...string) (int, string) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"sms", "simulate", "--config", cfgPath}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}

	for _, bad := range [][]string{{"--channel", "fax"}, {"--channel", "call", "--attestation", "C"}, {"--channel", "whatsapp", "--attestation", "B"}} {
		if code, out := simulate(append([]string{"--from", "+14155550123", "--text", "1"}, bad...)...); code != 2 || strings.Contains(out, "->") {
			t.Errorf("%v: exit %d, want 2 and nothing sent\n%s", bad, code, out)
		}
	}

	callID, _ := create(`{"number": "+14155550123", "channels": ["whatsapp", "sms", "call"]}`)
	code, out := simulate("--from", "+14155550123", "--channel", "call", "--attestation", "B")
	if code != 0 || !strings.Contains(out, "twilio call, +14155550123 -> +14155550100") || !strings.Contains(out, callID+" is pending") {
		t.Fatalf("attestation B: exit %d\n%s", code, out)
	}
	code, out = simulate("--from", "+14155550123", "--channel", "call")
	if code != 0 || !strings.Contains(out, "<Reject") || !strings.Contains(out, "verified: "+callID) || !strings.Contains(out, "channel call") {
		t.Fatalf("attestation A: exit %d\n%s", code, out)
	}

	twID, twCode := create(`{"number": "+14155550125", "to": "+14155550100", "channels": ["whatsapp"]}`)
	code, out = simulate("--from", "+14155550125", "--channel", "whatsapp", "--text", "Acme code "+twCode)
	if code != 0 || !strings.Contains(out, "/webhooks/twilio  (twilio whatsapp,") || !strings.Contains(out, "verified: "+twID) || !strings.Contains(out, "channel whatsapp") {
		t.Fatalf("whatsapp on Twilio: exit %d\n%s", code, out)
	}

	waID, waCode := create(`{"number": "+14155550124", "to": "+15550984277", "channels": ["sms", "whatsapp"]}`)
	code, out = simulate("--from", "+14155550124", "--channel", "whatsapp", "--text", "Acme code "+waCode)
	if code != 0 || !strings.Contains(out, "/webhooks/meta") || !strings.Contains(out, "verified: "+waID) || !strings.Contains(out, "channel whatsapp") {
		t.Fatalf("whatsapp: exit %d\n%s", code, out)
	}
}
