package conformance

import (
	"os"
	"strings"
	"testing"
	"time"
)

func fixtureOf(t *testing.T, provider string) Fixture {
	t.Helper()
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fixtures {
		if f.Provider == provider {
			return f
		}
	}
	t.Fatalf("no %s fixture", provider)
	return Fixture{}
}

// withAccount puts the entry's account into every request that carries
// one (query, form or JSON), and nothing of the recorded account remains.
func TestWithAccount(t *testing.T) {
	fixtures, err := Load(os.DirFS("testdata"))
	if err != nil {
		t.Fatal(err)
	}
	const id = "AC0123 &=x" // characters that need encoding
	rewritten := map[string]int{}
	for _, f := range fixtures {
		a, ok := accounts[f.Provider]
		if !ok || a.field == "" {
			continue
		}
		secrets := map[string]string{a.key: id}
		g := withAccount(f, secrets)
		for i, r := range g.Requests {
			old := recordedField(f.Requests[i], a.field)
			if old == "" {
				continue
			}
			if got := recordedField(r, a.field); got != id {
				t.Errorf("%s request %d: %s = %q, want %q", f.Name, i, a.field, got, id)
			}
			if strings.Contains(r.Path, a.field+"="+old) || strings.Contains(r.Body, a.field+"="+old) || strings.Contains(r.Body, `"`+old+`"`) {
				t.Errorf("%s request %d still carries %s", f.Name, i, old)
			}
			rewritten[f.Provider]++
		}
		if f.Requests[0].Path == g.Requests[0].Path && f.Requests[0].Body == g.Requests[0].Body && recordedField(f.Requests[0], a.field) != "" {
			t.Errorf("%s: unchanged", f.Name)
		}
		// An entry that names no account keeps the recorded one.
		if h := withAccount(f, map[string]string{}); h.Requests[0].Body != f.Requests[0].Body || h.Requests[0].Path != f.Requests[0].Path {
			t.Errorf("%s: rewritten without an account", f.Name)
		}
	}
	for _, p := range []string{"twilio", "vonage", "sns"} {
		if rewritten[p] < 6 {
			t.Errorf("%s: %d requests rewritten", p, rewritten[p])
		}
	}
}

// refusal names what the runner can establish, and otherwise lists the
// candidates in order; it never shows a secret.
func TestRefusal(t *testing.T) {
	const signed = "https://sms.example.com"
	for _, tc := range []struct {
		name      string
		provider  string
		secrets   map[string]string // added to the fixture's
		from      string            // Target.PublicURLFrom
		targetURL string
		date      time.Duration // the target's clock minus the runner's
		want, not []string
	}{
		{name: "other public_url", provider: "twilio", from: "--public-url", targetURL: "https://other.example",
			want: []string{"answered 403 invalid_signature", "the target's public_url is https://other.example", "signed for " + signed + " (--public-url)", "pass --public-url https://other.example"},
			not:  []string{"auth_token", "correct the public_url"}},
		{name: "other public_url than the file's", provider: "twilio", from: "the public_url of m.yaml", targetURL: "https://other.example",
			want: []string{"(the public_url of m.yaml): correct the public_url of the configuration, or pass --public-url https://other.example"}},
		{name: "other public_url than --target", provider: "twilio", from: "--target", targetURL: "https://other.example",
			want: []string{"signed for " + signed + " (--target): pass --public-url https://other.example"}},
		{name: "same public_url", provider: "twilio", secrets: map[string]string{"account_sid": "AC42"}, targetURL: signed,
			want: []string{signed + " is the target's public_url", "entry twilio", "its auth_token, or its account_sid AC42 (the requests carry it as AccountSid)"},
			not:  []string{"--public-url", "conformance-twilio-auth-token"}},
		{name: "public_url unknown", provider: "twilio",
			want: []string{"likely causes, in order: the target's public_url is not " + signed, "; the target's entry twilio", "its auth_token, or the target's entry may check an account_sid"}},
		{name: "scheme without the URL", provider: "vonage", secrets: map[string]string{"api_key": "vonage-key-secret"}, targetURL: "https://other.example",
			want: []string{"the vonage scheme does not sign the URL", "its signature_secret or signature_method, or its api_key (the requests carry it as api-key)"},
			not:  []string{"public_url", "vonage-key-secret", "conformance-vonage-signature-secret"}},
		{name: "clock off", provider: "vonage", targetURL: signed, date: 10 * time.Minute,
			want: []string{"the target's clock is 10m0s off the runner's", "beyond the 5m0s the vonage scheme allows"},
			not:  []string{"signature_secret"}},
		{name: "clock within the window", provider: "vonage", targetURL: signed, date: time.Minute,
			want: []string{"signature_secret"}, not: []string{"clock"}},
		{name: "HTTP Basic", provider: "bandwidth", targetURL: signed,
			want: []string{"does not sign the URL", "its username or password"}, not: []string{"conformance-bw-password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fixtureOf(t, tc.provider)
			for k, v := range tc.secrets {
				f.Secrets[k] = v
			}
			f = withAccount(f, f.Secrets)
			good, _, err := signers(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			target := Target{PublicURL: signed, PublicURLFrom: tc.from}
			req, err := build(target, f.Requests[0], newVars(), good, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			rp := reply{status: 403, body: `{"error":{"code":"invalid_signature","message":"the signature does not verify"}}`, date: time.Now().Add(tc.date)}
			got := refusal(target, f, good, req, rp, tc.targetURL)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("%q contains %q", got, n)
				}
			}
		})
	}
}
