package conformance

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/mogate/mogate/config"
)

// ForConfig plays each type by the configuration's entry: its name in the
// path, its secrets, its numbers; types it cannot play are skipped.
func TestForConfig(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
public_url: https://sms.example.com
api_keys: [{name: k, key: conformance-key-0123456789}]
providers:
  - {name: tw-main, type: twilio, auth_token: deployment-token}
  - {name: tx, type: telnyx, public_key: "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}
numbers:
  - {number: "+14155550177", provider: tw-main}
  - {number: "+447700900177", provider: tw-main, countries: [GB]}
  - {number: "+14155550178", provider: tx}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	out, skipped := ForConfig(fixtures, cfg)
	if skipped["vonage"] == "" || !strings.Contains(skipped["telnyx"], "public_key") || skipped["twilio"] != "" {
		t.Fatalf("skipped = %v", skipped)
	}
	n := 0
	for _, f := range out {
		if f.Provider != "twilio" {
			t.Fatalf("fixture of %s kept", f.Provider)
		}
		n++
		if f.Secrets["auth_token"] != "deployment-token" {
			t.Fatalf("%s: secrets %v", f.Name, f.Secrets)
		}
		for _, r := range f.Requests {
			if !strings.HasPrefix(r.Path, "/webhooks/tw-main") || strings.Contains(r.Path+r.Body, "14155550100") {
				t.Fatalf("%s: request %s %s", f.Name, r.Path, r.Body)
			}
		}
		for _, e := range f.Expect.Events {
			if e.To != "+14155550177" { // the US number: the longest common prefix
				t.Fatalf("%s: event to %s", f.Name, e.To)
			}
		}
	}
	if n < 6 {
		t.Fatalf("%d twilio fixtures kept", n)
	}
}

// A limit that no pacing can wait out stops the run at once, naming it.
func TestRunStopsAtLimit(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := startTarget(t, fixtures, func(y string) string {
		return strings.Replace(y, "creates_per_number_per_hour: 0", "creates_per_number_per_hour: 1", 1)
	})
	var twilio []Fixture
	for _, f := range fixtures {
		if f.Provider == "twilio" {
			twilio = append(twilio, f)
		}
	}
	// Two fixtures' senders repeat across runs: run them twice.
	results := Run(context.Background(), Target{BaseURL: base}, append(twilio, twilio...), "")
	last := results[len(results)-1]
	if last.OK || !strings.Contains(last.Detail, "limits stop the run") || !strings.Contains(last.Detail, "for this phone number") {
		t.Fatalf("last result %+v", last)
	}
	if len(results) >= 2*len(twilio)*5 {
		t.Fatalf("the run went on after the limit: %d results", len(results))
	}
}

// ForConfig plays Meta's fixtures on the entry's number by its
// phone_number_id, and leaves out a case whose channel no number of the
// entry serves.
func TestForConfigChannels(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`
public_url: https://sms.example.com
api_keys: [{name: k, key: conformance-key-0123456789}]
providers:
  - {name: wa, type: whatsapp, app_secret: deployment-secret, verify_token: deployment-token}
  - {name: vm, type: vonage-messages, signature_secret: s}
numbers:
  - {number: "+15550984299", provider: wa, phone_number_id: "222", channels: [whatsapp]}
  - {number: "+447700900177", provider: vm}
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	out, skipped := ForConfig(fixtures, cfg)
	if !strings.Contains(skipped["vonage-messages/whatsapp-text"], "no number of entry vm serves whatsapp") || skipped["vonage-messages"] != "" || skipped["whatsapp"] != "" {
		t.Fatalf("skipped = %v", skipped)
	}
	n := 0
	for _, f := range out {
		if f.Provider != "whatsapp" {
			continue
		}
		n++
		if f.NumberIDs["222"] != "+15550984299" || len(f.NumberIDs) != 1 || f.Secrets["verify_token"] != "deployment-token" {
			t.Fatalf("%s: number_ids %v secrets %v", f.Name, f.NumberIDs, f.Secrets)
		}
		for _, r := range f.Requests {
			if !strings.HasPrefix(r.Path, "/webhooks/wa") || strings.Contains(r.Path+r.Body, "114896151713920") {
				t.Fatalf("%s: request %s %s", f.Name, r.Path, r.Body)
			}
		}
		for _, e := range f.Expect.Events {
			if e.ToID != "222" {
				t.Fatalf("%s: event to_id %s", f.Name, e.ToID)
			}
		}
	}
	if n < 10 {
		t.Fatalf("%d whatsapp fixtures kept", n)
	}
}
