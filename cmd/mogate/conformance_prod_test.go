package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// productionShape is deploy/mogate.example.yaml as an operator runs it:
// its own public_url (https://sms.example.com, not the address the runner
// reaches), a Twilio entry with account_sid and a Vonage entry with
// api_key, plus the other account-bound entries of the configuration
// reference (Plivo with auth_id, Vonage Messages with api_key). The
// secrets come from the environment, as in production.
func productionShape(t *testing.T) (path, base, key string) {
	t.Helper()
	b, err := os.ReadFile("../../deploy/mogate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	addr := freeAddr(t)
	for old, repl := range map[string]string{
		"listen: 127.0.0.1:8080":       "listen: " + addr,
		"admin_listen: 127.0.0.1:9090": "admin_listen: " + freeAddr(t),
		"data_dir: /var/lib/mogate":    "data_dir: " + t.TempDir(),
	} {
		if !strings.Contains(y, old) {
			t.Fatalf("the example configuration has no %q", old)
		}
		y = strings.Replace(y, old, repl, 1)
	}
	// No event destination: the run's events would go to shop.example.com.
	y = regexp.MustCompile(`(?m)^\s+webhook_(url|secret):.*\n`).ReplaceAllString(y, "")
	y = strings.Replace(y, "\nnumbers:", `
  - {name: plivo, type: plivo, auth_id: MAZDQ1ZJIYMTM4ODIWNZ, auth_token: "${PLIVO_AUTH_TOKEN}"}
  - {name: vonage-messages, type: vonage-messages, signature_secret: "${VONAGE_SIGNATURE_SECRET}", api_key: "${VONAGE_API_KEY}"}
  - {name: meta, type: whatsapp, app_secret: "${META_APP_SECRET}", verify_token: "${META_VERIFY_TOKEN}"}

numbers:
  - {number: "+33757000000", provider: plivo, countries: [FR]}
  - {number: "+447700900125", provider: vonage-messages, countries: [GB]}
  - {number: "+447700900126", provider: vonage-messages, countries: [GB], channels: [whatsapp]}
  - {number: "+15550984299", provider: meta, phone_number_id: "106540352242922"}`, 1)
	if !strings.Contains(y, "account_sid: ${TWILIO_ACCOUNT_SID}") || !strings.Contains(y, "api_key: ${VONAGE_API_KEY}") {
		t.Fatal("the example configuration no longer has Twilio's account_sid and Vonage's api_key")
	}
	key = "prod-shop-key-5f0c2b9e7d1a4c3b"
	for k, v := range map[string]string{
		"MOGATE_SHOP_KEY": key, "TWILIO_ACCOUNT_SID": "AC5d1f0b9a2c3e4f5a6b7c8d9e0f1a2b3c",
		"TWILIO_AUTH_TOKEN": "prod-twilio-auth-token", "VONAGE_SIGNATURE_SECRET": "prod-vonage-signature-secret",
		"VONAGE_API_KEY": "9f8e7d6c", "VONAGE_API_SECRET": "prod-vonage-api-secret", "PLIVO_AUTH_TOKEN": "prod-plivo-auth-token",
		"META_APP_SECRET": "prod-meta-app-secret", "META_VERIFY_TOKEN": "prod-meta-verify-token",
	} {
		t.Setenv(k, v)
	}
	path = filepath.Join(t.TempDir(), "mogate.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	base = "http://" + addr
	startServer(t, path, base)
	return path, base, key
}

// TestConformanceProductionShape: `conformance run --config` passes on the
// documented production configuration: the fixtures carry the entries'
// own account identifiers (Twilio AccountSid, Vonage api-key), signed for
// the file's public_url while the requests go to --target.
func TestConformanceProductionShape(t *testing.T) {
	path, base, key := productionShape(t)
	var out, errb bytes.Buffer
	code := run([]string{"conformance", "run", "--config", path, "--target", base, "--api-key", key}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), " 0 failed") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	for _, p := range []string{"twilio", "vonage", "plivo", "vonage-messages", "whatsapp"} {
		if !strings.Contains(out.String(), "\n"+p+"\n") {
			t.Errorf("provider %s did not run:\n%s", p, out.String())
		}
	}
	// WhatsApp: Meta's numbers by their phone_number_id, the handshake with
	// the entry's verify token, Vonage's WhatsApp cases on the number that
	// lists whatsapp.
	for _, c := range []string{"handshake ", "handshake-wrong-token ", "username-only ", "whatsapp-text ", "whatsapp-username "} {
		if !strings.Contains(out.String(), "  "+c) {
			t.Errorf("case %s did not run:\n%s", c, out.String())
		}
	}
}

// TestConformanceRefusalCause: when the target refuses the runner's
// signatures, the failure names the cause the runner can establish: a
// public_url other than the target's, or (the public_url being right) the
// entry's secret; never public_url for a wrong secret. No secret is printed.
func TestConformanceRefusalCause(t *testing.T) {
	path, base, key := productionShape(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := filepath.Join(t.TempDir(), "wrong-secret.yaml")
	y := strings.Replace(string(b), "auth_token: ${TWILIO_AUTH_TOKEN}", "auth_token: not-the-deployment-token", 1)
	if err := os.WriteFile(wrongSecret, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		args      []string
		want, not []string
	}{
		{"wrong secret", []string{"--config", wrongSecret},
			[]string{"auth_token", "entry twilio", "https://sms.example.com is the target's public_url"},
			[]string{"--public-url", "not-the-deployment-token"}},
		{"wrong public_url", []string{"--config", path, "--public-url", "https://elsewhere.example"},
			[]string{"public_url", "signed for https://elsewhere.example", "the target's public_url is https://sms.example.com"},
			[]string{"auth_token", "prod-twilio-auth-token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"conformance", "run", "--target", base, "--api-key", key, "--provider", "twilio"}, tc.args...)
			if code := run(args, &out, &errb); code != 1 {
				t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
			}
			var fails []string
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "FAIL twilio/") && strings.Contains(l, " deliver: ") {
					fails = append(fails, l)
				}
			}
			if len(fails) == 0 {
				t.Fatalf("no failed delivery:\n%s", out.String())
			}
			for _, l := range fails {
				for _, w := range tc.want {
					if !strings.Contains(l, w) {
						t.Errorf("%q lacks %q", l, w)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(l, n) {
						t.Errorf("%q contains %q", l, n)
					}
				}
			}
		})
	}
}
