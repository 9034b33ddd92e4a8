package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const full = `
listen: 127.0.0.1:9090
public_url: https://sms.example.com/
data_dir: /var/lib/mogate
api_keys:
  - name: shop
    key: ${SHOP_KEY}
    webhook_url: https://shop.example.com/hooks/mogate
    webhook_secret: whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0
  - {name: ops, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
providers:
  - {name: twilio,  type: twilio,  auth_token: ${TWILIO_AUTH_TOKEN}, account_sid: AC123}
  - {name: vonage,  type: vonage,  signature_secret: vsecret, signature_method: sha256}
  - {name: vonage-messages, type: vonage-messages, signature_secret: vsecret}
  - {name: plivo,   type: plivo,   auth_id: MA123, auth_token: ptoken}
  - {name: telnyx,  type: telnyx,  public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}
numbers:
  - {number: "+14155550100", provider: twilio}
  - {number: "+447700900123", provider: vonage, countries: [GB, IE]}
  - {number: "+33757000000", provider: plivo, countries: ["*"], weight: 2}
verification:
  ttl: 5m
  code_length: ${CODE_LEN}
  max_attempts: 5
limits:
  creates_per_key_per_second: 0
`

func TestParseFull(t *testing.T) {
	cfg, err := Parse([]byte(full), env(map[string]string{"SHOP_KEY": "shop-key-0123456789", "TWILIO_AUTH_TOKEN": "tw: {token} #x, ]", "CODE_LEN": "8"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9090" || cfg.BaseURL() != "https://sms.example.com" {
		t.Errorf("listen/public_url = %q %q", cfg.Listen, cfg.BaseURL())
	}
	if cfg.APIKeys[0].Key.Reveal() != "shop-key-0123456789" || cfg.Providers[0].AuthToken.Reveal() != "tw: {token} #x, ]" {
		t.Errorf("env expansion failed: %+v", cfg.APIKeys[0])
	}
	if cfg.Verification.TTL != 5*time.Minute || cfg.Verification.CodeLength != 8 || cfg.Verification.MaxAttempts != 5 {
		t.Errorf("verification = %+v", cfg.Verification)
	}
	// Keys not in the file keep their defaults.
	if cfg.Limits.CreatesPerKeyPerSecond != 0 || cfg.Limits.CreatesPerNumberPerHour != 10 || cfg.Store != "memory" || cfg.Retention != 24*time.Hour {
		t.Errorf("defaults lost: %+v store=%q", cfg.Limits, cfg.Store)
	}
	if cfg.Numbers[2].Weight != 2 || cfg.Numbers[1].Countries[1] != "IE" {
		t.Errorf("numbers = %+v", cfg.Numbers)
	}
}

func TestParseEmptyIsDefaults(t *testing.T) {
	cfg, err := Parse(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.PublicURL != "http://127.0.0.1:8080" || cfg.Verification.CodeLength != 6 {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top-level key", "listen: a:1\nlistn: b\n", []string{"line 2", `unknown key "listn"`}},
		{"unknown nested key", "verification:\n  ttl: 1m\n  code_len: 6\n", []string{"line 3", `"verification.code_len"`, `did you mean "code_length"`}},
		{"unknown provider key", "providers:\n  - name: t\n    type: twilio\n    auth_token: x\n    secret: y\n", []string{"line 5", `"providers[0].secret"`}},
		{"key of another type", "providers:\n  - {name: t, type: twilio, auth_token: x, auth_id: MA1}\n", []string{"line 2", "providers[0].auth_id", "not a key of type twilio"}},
		{"missing required key", "providers:\n  - {name: t, type: plivo, auth_id: MA1}\n", []string{"line 2", "providers[0].auth_token", "required"}},
		{"unknown type", "providers:\n  - {name: t, type: twillio, auth_token: x}\n", []string{"line 2", `unknown provider type "twillio"`}},
		{"bad vonage method", "providers:\n  - {name: v, type: vonage, signature_secret: x, signature_method: crc}\n", []string{"signature_method", "md5hash"}},
		{"bad telnyx key", "providers:\n  - {name: t, type: telnyx, public_key: abc}\n", []string{"public_key", "32-byte"}},
		{"unset env", "listen: a:1\npublic_url: ${NOPE}\n", []string{"line 2", "public_url", "NOPE is not set"}},
		{"bad number", "providers: [{name: t, type: twilio, auth_token: x}]\nnumbers:\n  - {number: 4155550100, provider: t}\n", []string{"line 3", "numbers[0].number", "E.164"}},
		{"number of unknown provider", "numbers:\n  - {number: \"+14155550100\", provider: nope}\n", []string{"numbers[0].provider", `no provider named "nope"`}},
		{"bad ttl", "verification: {ttl: 48h}\n", []string{"verification.ttl"}},
		{"bad code length", "verification: {code_length: 3}\n", []string{"verification.code_length"}},
		{"type error", "verification: {max_attempts: many}\n", []string{"line 1", "many"}},
		{"duplicate provider", "providers:\n  - {name: t, type: twilio, auth_token: x}\n  - {name: t, type: twilio, auth_token: y}\n", []string{"line 3", "duplicate name"}},
		{"key and hash", "api_keys:\n  - {name: a, key: 0123456789abcdef0, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n", []string{"line 2", "exactly one"}},
		{"short key", "api_keys:\n  - {name: a, key: short}\n", []string{"api_keys[0].key", "16"}},
		{"bad webhook secret", "api_keys:\n  - {name: a, key: 0123456789abcdef0, webhook_secret: plain}\n", []string{"whsec_"}},
		{"public url with query", "public_url: https://x.example/?a=b\n", []string{"public_url"}},
		{"two documents", "listen: a:1\n---\nlisten: b:2\n", []string{"exactly one YAML document"}},
		{"bad store", "store: disk\n", []string{"store"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestErrorsDoNotLeakSecrets(t *testing.T) {
	y := "providers:\n  - {name: t, type: twilio, auth_token: S3CRET-TOKEN-VALUE, bogus: 1}\napi_keys:\n  - {name: a, key: S3CRET-API-KEY-VALUE, webhook_secret: S3CRET-WH}\n"
	_, err := Parse([]byte(y), env(nil))
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), "S3CRET") {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestSecretRedaction(t *testing.T) {
	s := Secret("hunter2-very-secret")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "s", s, "struct", struct{ S Secret }{s})
	j, _ := json.Marshal(struct{ S Secret }{s})
	y, _ := yaml.Marshal(struct{ S Secret }{s})
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %#v %+v", s, s, s, s, s, struct{ S Secret }{s}),
		buf.String(), string(j), string(y),
	}
	for _, o := range outs {
		if strings.Contains(o, "hunter2") {
			t.Errorf("secret printed: %s", o)
		}
	}
	if s.Reveal() != "hunter2-very-secret" {
		t.Error("Reveal")
	}
}

func TestDevCredentialsPersist(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cfg, creds, err := Dev(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Dev || len(cfg.Providers) != 1 || cfg.Providers[0].Type != "twilio" || len(cfg.Numbers) != 2 || len(cfg.APIKeys) != 1 {
		t.Fatalf("dev config = %+v", cfg)
	}
	st, err := os.Stat(filepath.Join(dir, DevCredentialsFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", err, st)
	}
	_, again, err := Dev(dir, false)
	if err != nil || again != creds {
		t.Errorf("credentials changed across starts: %v", err)
	}
	if _, err := LoadDevCredentials(t.TempDir(), false); err == nil {
		t.Error("want error without create")
	}
}

// TestWebhookURLScheme: events leave over https; http only where private
// destinations are allowed (DESIGN.md §4), as dev mode allows them.
func TestWebhookURLScheme(t *testing.T) {
	cases := []struct {
		name, url    string
		allowPrivate bool
		wantErr      bool
	}{
		{"https", "https://shop.example.com/hooks", false, false},
		{"http refused", "http://shop.example.com/hooks", false, true},
		{"http to loopback refused", "http://127.0.0.1:9000/hooks", false, true},
		{"http with allow_private_destinations", "http://127.0.0.1:9000/hooks", true, false},
		{"not http(s) even when allowed", "ftp://shop.example.com/hooks", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := fmt.Sprintf("api_keys:\n  - {name: a, key: 0123456789abcdef0, webhook_url: %q}\nevents: {allow_private_destinations: %t}\n", tc.url, tc.allowPrivate)
			_, err := Parse([]byte(y), env(nil))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %t", err, tc.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "api_keys[0].webhook_url")) {
				t.Errorf("error %q does not name the key and line", err)
			}
		})
	}
	cfg, _, err := Dev(filepath.Join(t.TempDir(), "data"), true)
	if err != nil || !cfg.Events.AllowPrivateDestinations {
		t.Fatalf("dev mode: allow_private_destinations = %t, err %v", cfg.Events.AllowPrivateDestinations, err)
	}
}
