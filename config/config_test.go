package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
	if cfg.Limits.CreatesPerKeyPerSecond != 0 || cfg.Limits.CreatesPerNumberPerHour != 10 || cfg.Limits.PageStreamsPerSession != 4 || cfg.Store != "memory" || cfg.Retention != 24*time.Hour {
		t.Errorf("defaults lost: %+v store=%q", cfg.Limits, cfg.Store)
	}
	if cfg.Numbers[2].Weight != 2 || cfg.Numbers[1].Countries[1] != "IE" {
		t.Errorf("numbers = %+v", cfg.Numbers)
	}
}

// minimal is the smallest configuration that can work; rows below add to it.
const minimal = `api_keys:
  - {name: shop, key: shop-key-0123456789}
providers:
  - {name: twilio, type: twilio, auth_token: x}
numbers:
  - {number: "+14155550100", provider: twilio}
`

func TestParseMinimalIsDefaults(t *testing.T) {
	cfg, err := Parse([]byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.PublicURL != "http://127.0.0.1:8080" || cfg.Verification.CodeLength != 6 {
		t.Errorf("defaults = %+v", cfg)
	}
	if cfg.Limits.MaxConnections != 10000 {
		t.Errorf("limits.max_connections = %d, want 10000", cfg.Limits.MaxConnections)
	}
	if v := cfg.Verification; v.WhatsAppText != "{app} code {code}" || v.RejectLineTypes != nil {
		t.Errorf("verification whatsapp_text %q, reject_line_types %v", v.WhatsAppText, v.RejectLineTypes)
	}
	if c := cfg.Channels.Call; fmt.Sprint(c.Countries) != "[US CA]" || c.MinAttestation != "A" {
		t.Errorf("channels.call = %+v, want countries [US CA], min_attestation A", c)
	}
	if k := cfg.APIKeys[0]; k.AppName != "shop" {
		t.Errorf("app_name = %q, want the key's name", k.AppName)
	}
}

// TestChannelKeys: the keys of channels beyond SMS, set.
func TestChannelKeys(t *testing.T) {
	y := strings.Replace(minimal, "key: shop-key-0123456789}", "key: shop-key-0123456789, app_name: Acme Shop}", 1) + `verification:
  whatsapp_text: "Sign in to {app}: {code}"
  reject_line_types: [voip, toll_free, other]
channels:
  call: {countries: [US], min_attestation: A}
`
	y = strings.Replace(y, "provider: twilio}", "provider: twilio, channels: [sms, whatsapp, call]}", 1)
	cfg, err := Parse([]byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.APIKeys[0].AppName != "Acme Shop" || cfg.Verification.WhatsAppText != "Sign in to {app}: {code}" ||
		fmt.Sprint(cfg.Verification.RejectLineTypes) != "[voip toll_free other]" || fmt.Sprint(cfg.Channels.Call.Countries) != "[US]" ||
		fmt.Sprint(cfg.Numbers[0].Channels) != "[sms whatsapp call]" {
		t.Errorf("parsed = %+v %+v %+v %+v", cfg.APIKeys[0], cfg.Verification, cfg.Channels, cfg.Numbers[0])
	}
	// app_name counts characters, not bytes: 100 accented letters are fine, 101 are not.
	for n, ok := range map[int]bool{100: true, 101: false} {
		y := strings.Replace(minimal, "key: shop-key-0123456789}", "key: shop-key-0123456789, app_name: "+strings.Repeat("é", n)+"}", 1)
		if _, err := Parse([]byte(y), env(nil)); (err == nil) != ok {
			t.Errorf("app_name of %d characters: %v", n, err)
		}
	}
}

// TestWeight: an absent or empty weight is 1; weight 0 stays 0 (it drains
// the number) instead of becoming 1.
func TestWeight(t *testing.T) {
	y := minimal + `  - {number: "+14155550101", provider: twilio, weight: 0}
  - {number: "+14155550102", provider: twilio, weight: 2.5}
  - number: "+14155550103"
    provider: twilio
    weight:
`
	cfg, err := Parse([]byte(y), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, n := range cfg.Numbers {
		got = append(got, n.Weight)
	}
	if fmt.Sprint(got) != "[1 0 2.5 1]" {
		t.Errorf("weights = %v, want [1 0 2.5 1]", got)
	}
}

// TestParseAccepts: values next to the ones Validate refuses.
func TestParseAccepts(t *testing.T) {
	y := minimal + `trusted_proxies: [10.0.0.0/8, 192.168.1.7, "::1", "2001:db8::/32"]
log_level: debug
admin_listen: 127.0.0.1:9090
shutdown_delay: 5m
limits: {capture_guesses_per_sender_per_hour: 0, streams_per_key: 0, page_streams_per_session: 0, max_connections: 0}
`
	y = strings.Replace(y, "provider: twilio}", `provider: twilio, countries: [GB, "*", AX]}`, 1)
	if _, err := Parse([]byte(y), env(nil)); err != nil {
		t.Fatal(err)
	}
	bird := strings.Replace(minimal, "providers:\n", "providers:\n  - {name: bird, type: bird, signing_key: k}\n", 1) +
		"  - {number: \"+31970102030\", provider: bird}\n"
	if _, err := Parse([]byte(bird), env(nil)); err != nil {
		t.Fatalf("bird entry with one number: %v", err)
	}
}

// TestRefused: every configuration that cannot work is refused, with the key
// and the line of the problem (docs/configuration.md). Each row is minimal plus one
// mistake, so the error is that mistake's.
func TestRefused(t *testing.T) {
	keySum := sha256.Sum256([]byte("shop-key-0123456789"))
	const sumOfTest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"no api_keys key", strings.Replace(minimal, "api_keys:\n  - {name: shop, key: shop-key-0123456789}\n", "", 1),
			[]string{"config: api_keys: at least one API key is required"}},
		{"empty api_keys", strings.Replace(minimal, "api_keys:\n  - {name: shop, key: shop-key-0123456789}\n", "listen: 127.0.0.1:8080\napi_keys: []\n", 1),
			[]string{"line 2: api_keys: at least one API key is required"}},
		{"empty numbers", strings.Replace(minimal, "numbers:\n  - {number: \"+14155550100\", provider: twilio}\n", "numbers: []\n", 1),
			[]string{"line 5: numbers: at least one receiving number is required"}},
		{"no numbers key", strings.Replace(minimal, "numbers:\n  - {number: \"+14155550100\", provider: twilio}\n", "", 1),
			[]string{"config: numbers: at least one receiving number is required"}},
		{"same key twice", strings.Replace(minimal, "api_keys:\n", "api_keys:\n  - {name: shop2, key: shop-key-0123456789}\n", 1),
			[]string{"line 3: api_keys[1].key: the same API key as api_keys[0] (line 2)"}},
		{"same key_sha256 twice", strings.Replace(minimal, "api_keys:\n", "api_keys:\n  - {name: a, key_sha256: "+sumOfTest+"}\n  - {name: b, key_sha256: "+strings.ToUpper(sumOfTest)+"}\n", 1),
			[]string{"line 3: api_keys[1].key_sha256: the same API key as api_keys[0] (line 2)"}},
		{"key matches a key_sha256", strings.Replace(minimal, "providers:\n", "  - {name: ops, key_sha256: "+hex.EncodeToString(keySum[:])+"}\nproviders:\n", 1),
			[]string{"line 3: api_keys[1].key_sha256: the same API key as api_keys[0] (line 2)"}},
		{"country UK", strings.Replace(minimal, "provider: twilio}", "provider: twilio, countries: [GB,\n    UK]}", 1),
			[]string{"line 7: numbers[0].countries[1]", `"UK" is not an ISO 3166-1 alpha-2 country code`, `did you mean "GB"?`}},
		{"country unassigned", strings.Replace(minimal, "provider: twilio}", "provider: twilio, countries: [XK]}", 1),
			[]string{"line 6: numbers[0].countries[0]", `"XK" is not an ISO 3166-1`}},
		{"country lower case", strings.Replace(minimal, "provider: twilio}", "provider: twilio, countries: [ie]}", 1),
			[]string{"line 6: numbers[0].countries[0]", `did you mean "IE"?`}},
		{"trusted proxy not an IP", minimal + "trusted_proxies:\n  - 10.0.0.0/8\n  - proxy.internal\n",
			[]string{`line 9: trusted_proxies[1]: must be an IP address or a CIDR, got "proxy.internal"`}},
		{"trusted proxy bad CIDR", minimal + "trusted_proxies: [10.0.0.1/33]\n", []string{`line 7: trusted_proxies[0]: must be an IP address or a CIDR, got "10.0.0.1/33"`}},
		{"negative weight", strings.Replace(minimal, "provider: twilio}", "provider: twilio, weight: -1}", 1),
			[]string{"line 6: numbers[0].weight: must be a number >= 0"}},
		{"NaN weight", strings.Replace(minimal, "provider: twilio}", "provider: twilio, weight: .nan}", 1),
			[]string{"line 6: numbers[0].weight"}},
		{"log level", minimal + "log_level: verbose\n", []string{`line 7: log_level: must be debug, info, warn or error, got "verbose"`}},
		{"admin_listen without port", minimal + "admin_listen: 127.0.0.1\n", []string{"line 7: admin_listen: must be host:port"}},
		{"admin_listen is listen", "listen: 127.0.0.1:8080\n" + minimal + "admin_listen: 127.0.0.1:8080\n", []string{"line 8: admin_listen: must differ from listen"}},
		{"admin_listen on listen's wildcard", "listen: :8080\n" + minimal + "admin_listen: 127.0.0.1:8080\n", []string{"line 8: admin_listen: must differ from listen"}},
		{"shutdown_delay too long", minimal + "shutdown_delay: 10m\n", []string{"line 7: shutdown_delay: must be between 0s and 5m"}},
		{"shutdown_delay negative", minimal + "shutdown_delay: -1s\n", []string{"line 7: shutdown_delay"}},
		{"negative capture guesses", minimal + "limits:\n  capture_guesses_per_sender_per_hour: -1\n", []string{"line 8: limits.capture_guesses_per_sender_per_hour: must not be negative"}},
		{"negative streams", minimal + "limits: {streams_per_key: -5}\n", []string{"line 7: limits.streams_per_key: must not be negative"}},
		{"negative page streams", minimal + "limits:\n  page_streams_per_session: -1\n", []string{"line 8: limits.page_streams_per_session: must not be negative"}},
		{"negative max_connections", minimal + "limits: {max_connections: -1}\n", []string{"line 7: limits.max_connections: must not be negative"}},
		{"redis without redis_url", minimal + "store: redis\n", []string{"line 7: redis_url: required with store: redis"}},
		{"redis_prefix empty", minimal + "redis_prefix: \"\"\n", []string{"line 7: redis_prefix: must be 1 to 64 characters, got 0"}},
		{"redis_prefix with a brace", minimal + "redis_prefix: \"mogate:{prod}\"\n", []string{`line 7: redis_prefix: must not contain '{'`}},
		{"redis_prefix with a closing brace", minimal + "redis_prefix: prod}\n", []string{`line 7: redis_prefix: must not contain '}'`}},
		{"redis_prefix with a space", minimal + "redis_prefix: \"mogate prod\"\n", []string{`line 7: redis_prefix: must not contain ' '`}},
		{"redis_prefix with a tab", minimal + "redis_prefix: \"mogate\\tprod\"\n", []string{`line 7: redis_prefix: must not contain '\t'`}},
		{"redis_prefix with a newline", minimal + "redis_prefix: \"a\\nb\"\n", []string{`line 7: redis_prefix: must not contain '\n'`}},
		{"redis_prefix too long", minimal + "redis_prefix: " + strings.Repeat("p", 65) + "\n", []string{"line 7: redis_prefix: must be 1 to 64 characters, got 65"}},
		{"whatsapp_text without code", minimal + "verification:\n  whatsapp_text: \"{app} verification\"\n", []string{`line 8: verification.whatsapp_text: must contain {code}, got "{app} verification"`}},
		{"whatsapp_text unknown placeholder", minimal + "verification: {whatsapp_text: \"{app_name} code {code}\"}\n", []string{"line 7: verification.whatsapp_text: {app_name} is not a placeholder (only {code} and {app} are)"}},
		{"reject_line_types unknown", minimal + "verification:\n  reject_line_types: [voip, tollfree]\n", []string{`line 8: verification.reject_line_types[1]: "tollfree" is not a line type (mobile, landline, voip, toll_free, other) (did you mean "toll_free"?)`}},
		{"call min_attestation B", minimal + "channels:\n  call:\n    min_attestation: B\n", []string{`line 9: channels.call.min_attestation: must be A (B and C do not prove that the caller owns the number), got "B"`}},
		{"call country", minimal + "channels:\n  call:\n    countries: [US, USA]\n", []string{`line 9: channels.call.countries[1]: "USA" is not an ISO 3166-1 alpha-2 country code`}},
		{"call country star", minimal + "channels: {call: {countries: [\"*\"]}}\n", []string{`line 7: channels.call.countries[0]: "*" is not an ISO 3166-1`}},
		{"channels key typo", minimal + "channels:\n  cal: {countries: [US]}\n", []string{`line 8: unknown key "channels.cal" (did you mean "call"?)`}},
		{"number channels empty", strings.Replace(minimal, "provider: twilio}", "provider: twilio, channels: []}", 1), []string{"line 6: numbers[0].channels: must list at least one of sms, whatsapp, call"}},
		{"number channel unknown", strings.Replace(minimal, "provider: twilio}", "provider: twilio,\n     channels: [sms, voice]}", 1), []string{`line 7: numbers[0].channels[1]: "voice" is not a channel (sms, whatsapp, call)`}},
		{"number channel twice", strings.Replace(minimal, "provider: twilio}", "provider: twilio, channels: [sms, sms]}", 1), []string{"line 6: numbers[0].channels[1]: sms is listed twice"}},
		{"phone_number_id not digits", strings.Replace(minimal, "provider: twilio}", "provider: twilio, phone_number_id: \"+15550984277\"}", 1), []string{`line 6: numbers[0].phone_number_id: must be the digits of the number's Phone number ID in Meta's WhatsApp Manager, got "+15550984277"`}},
		{"app_name with a newline", strings.Replace(minimal, "key: shop-key-0123456789}", "key: shop-key-0123456789, app_name: \"Acme\\nShop\"}", 1), []string{"line 2: api_keys[0].app_name: must be at most 100 characters, without control characters"}},
		{"mis-indented top-level key", "listen: 127.0.0.1:8080\n data_dir: x\n" + minimal, []string{"config: line 2: "}},
		{"mis-indented nested key", minimal + "verification:\n  ttl: 1m\n code_length: 6\n", []string{"config: line 9: "}},
		{"mis-indented list item", "api_keys:\n  - name: shop\n   key: shop-key-0123456789\n", []string{"config: line 3: "}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if n := len(strings.Split(err.Error(), "\n")); n != 1 {
				t.Errorf("%d errors, want only the row's: %v", n, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
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
		{"unset env", "listen: a:1\npublic_url: ${NOPE}\n", []string{"config: line 2: public_url: ${NOPE} is not set in the environment"}},
		{"bad number", "providers: [{name: t, type: twilio, auth_token: x}]\nnumbers:\n  - {number: 4155550100, provider: t}\n", []string{"line 3", "numbers[0].number", "E.164"}},
		{"number of unknown provider", "numbers:\n  - {number: \"+14155550100\", provider: nope}\n", []string{"numbers[0].provider", `no provider named "nope"`}},
		{"bad ttl", "verification: {ttl: 48h}\n", []string{"verification.ttl"}},
		{"bad code length", "verification: {code_length: 3}\n", []string{"verification.code_length"}},
		{"type error", "verification: {max_attempts: many}\n", []string{"line 1: verification.max_attempts: cannot unmarshal", "many"}},
		{"duplicate provider", "providers:\n  - {name: t, type: twilio, auth_token: x}\n  - {name: t, type: twilio, auth_token: y}\n", []string{"line 3", "duplicate name"}},
		{"key and hash", "api_keys:\n  - {name: a, key: 0123456789abcdef0, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n", []string{"line 2", "exactly one"}},
		{"short key", "api_keys:\n  - {name: a, key: short}\n", []string{"api_keys[0].key", "16"}},
		{"bad webhook secret", "api_keys:\n  - {name: a, key: 0123456789abcdef0, webhook_secret: plain}\n", []string{"whsec_"}},
		{"api_url not a URL", "providers:\n  - {name: t, type: twilio, auth_token: x, api_url: \"api.twilio.com\"}\n", []string{"line 2", "providers[0].api_url", "absolute http(s) URL"}},
		{"api_url http elsewhere", "providers:\n  - {name: t, type: twilio, auth_token: x, api_url: \"http://api.twilio.com\"}\n", []string{"line 2", "providers[0].api_url", "must be https", "loopback"}},
		{"api_url http to a private address", "providers:\n  - {name: t, type: twilio, auth_token: x}\n  - {name: v, type: vonage, api_url: \"http://10.0.0.7:8080\"}\n", []string{"line 3", "providers[1].api_url", "must be https"}},
		{"api_url http to a name ending in localhost", "providers:\n  - {name: t, type: twilio, auth_token: x, api_url: \"http://localhost.evil.example\"}\n", []string{"line 2", "providers[0].api_url", "must be https"}},
		{"api_url ftp", "providers:\n  - {name: t, type: twilio, auth_token: x, api_url: \"ftp://127.0.0.1\"}\n", []string{"line 2", "providers[0].api_url", "absolute http(s) URL"}},
		{"api_url with credentials", "providers:\n  - {name: t, type: twilio, auth_token: x, api_url: \"https://u:pw-in-url@api.example\"}\n", []string{"line 2", "providers[0].api_url", "user:password"}},
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
	if !cfg.Dev || len(cfg.Providers) != 1 || cfg.Providers[0].Type != "twilio" || len(cfg.Numbers) != 2 || len(cfg.APIKeys) != 1 ||
		cfg.Numbers[0].Weight != 1 || cfg.Numbers[1].Weight != 1 {
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
// destinations are allowed (docs/api.md), as dev mode allows them.
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
	const secret = "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA=="
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := fmt.Sprintf("api_keys:\n  - {name: a, key: 0123456789abcdef0, webhook_secret: "+secret+", webhook_url: %q}\nevents: {allow_private_destinations: %t}\nproviders: [{name: tw, type: twilio, auth_token: t}]\nnumbers: [{number: \"+14155550100\", provider: tw}]\n", tc.url, tc.allowPrivate)
			_, err := Parse([]byte(y), env(nil))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %t", err, tc.wantErr)
			}
			if err != nil && (!strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "api_keys[0].webhook_url")) {
				t.Errorf("error %q does not name the key and line", err)
			}
		})
	}
	// Without webhook_secret no event could be signed: all would be dropped.
	y := "api_keys:\n  - {name: a, key: 0123456789abcdef0, webhook_url: https://shop.example.com/hooks}\nproviders: [{name: tw, type: twilio, auth_token: t}]\nnumbers: [{number: \"+14155550100\", provider: tw}]\n"
	if _, err := Parse([]byte(y), env(nil)); err == nil || !strings.Contains(err.Error(), "line 2: api_keys[0].webhook_secret: is required with webhook_url") {
		t.Errorf("webhook_url without webhook_secret: %v", err)
	}
	cfg, _, err := Dev(filepath.Join(t.TempDir(), "data"), true)
	if err != nil || !cfg.Events.AllowPrivateDestinations {
		t.Fatalf("dev mode: allow_private_destinations = %t, err %v", cfg.Events.AllowPrivateDestinations, err)
	}
}

func TestIsCountry(t *testing.T) {
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if isCountry(string([]rune{a, b})) {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("%d assigned codes, want 249", n)
	}
	for _, cc := range []string{"UK", "EU", "XK", "ZZ", "gb", "DA", " A", "AD AE", "*"} {
		if isCountry(cc) {
			t.Errorf("isCountry(%q)", cc)
		}
	}
}

// schemas is a small table of provider types for the CheckProviders tests
// (adapters/registry holds the real one and tests it on full files).
var schemas = []Schema{
	{Type: "twilio", Keys: []Key{{Name: "auth_token", Required: true, Secret: true}, {Name: "account_sid"}}},
	{Type: "bird", Keys: []Key{{Name: "signing_key", Required: true, Secret: true}}, OneNumber: true},
	{Type: "vonage", Keys: []Key{{Name: "signature_secret", Required: true, Secret: true}, {Name: "signature_method"}},
		Check: func(p *Provider) (string, string) {
			if p.SignatureMethod == "" {
				p.SignatureMethod = "md5hash"
			}
			if p.SignatureMethod != "md5hash" {
				return "signature_method", "must be md5hash"
			}
			return "", ""
		}},
}

func TestCheckProviders(t *testing.T) {
	cases := []struct {
		name, providers, numbers string
		want                     []string // empty: accepted
	}{
		{"fine", "  - {name: t, type: twilio, auth_token: x}\n  - {name: v, type: vonage, signature_secret: s}\n", "", nil},
		{"key of another type", "  - {name: t, type: twilio, auth_token: x, signing_key: k}\n", "", []string{"line 4", "providers[0].signing_key", "not a key of type twilio"}},
		{"missing required key", "  - {name: t, type: twilio, account_sid: AC1}\n", "", []string{"line 4", "providers[0].auth_token", "required for type twilio"}},
		{"blank secret", "  - {name: t, type: twilio, auth_token: \" \"}\n", "", []string{"providers[0].auth_token", "blank"}},
		{"unknown type", "  - {name: t, type: twillio, auth_token: x}\n", "", []string{"line 4", `unknown provider type "twillio" (known: twilio, bird, vonage)`}},
		{"check", "  - {name: t, type: twilio, auth_token: x}\n  - {name: v, type: vonage, signature_secret: s, signature_method: crc}\n", "", []string{"line 5", "providers[1].signature_method", "must be md5hash"}},
		{"one number: two", "  - {name: t, type: twilio, auth_token: x}\n  - {name: b, type: bird, signing_key: k}\n",
			"  - {number: \"+31970102030\", provider: b}\n  - {number: \"+31970102031\", provider: b}\n",
			[]string{`line 5: providers[1]: bird payloads lack the receiving number, so entry "b" must have exactly one number in numbers:, has 2`}},
		{"one number: none", "  - {name: t, type: twilio, auth_token: x}\n  - {name: b, type: bird, signing_key: k}\n", "", []string{"line 5: providers[1]", `entry "b" must have exactly one number`, "has 0"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			y := "api_keys:\n  - {name: shop, key: shop-key-0123456789}\nproviders:\n" + tc.providers +
				"numbers:\n  - {number: \"+14155550100\", provider: t}\n" + tc.numbers
			cfg, err := Parse([]byte(y), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.CheckProviders(schemas)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Providers[1].SignatureMethod != "md5hash" {
					t.Errorf("Check did not set the default: %q", cfg.Providers[1].SignatureMethod)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", y)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestAPIURL: api_url is https, or http to a loopback address only, so that
// REST credentials never travel in clear.
func TestAPIURL(t *testing.T) {
	for _, u := range []string{
		"https://api.twilio.com", "https://10.0.0.7:8443/base", "http://127.0.0.1:8080", "http://127.3.4.5",
		"http://[::1]:9000/", "http://localhost:8080", "http://LocalHost", "HTTPS://api.example.com",
	} {
		if err := CheckAPIURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
		y := strings.Replace(minimal, "auth_token: x}", `auth_token: x, api_url: "`+u+`"}`, 1)
		if _, err := Parse([]byte(y), env(nil)); err != nil {
			t.Errorf("%s refused at load: %v", u, err)
		}
	}
	for _, u := range []string{
		"http://api.twilio.com", "http://10.0.0.7", "http://192.168.1.2:80", "http://[::2]", "http://0.0.0.0:80",
		"http://localhost.example.com", "http://128.0.0.1", "api.twilio.com", "ftp://127.0.0.1",
		"https://", "https://u:p@api.example.com", "https://api.example.com/?x=1",
		"https://api.example.com/?api_secret=s3cr3t", "http://api.example.com/?api_secret=s3cr3t", "http:s3cr3t",
		"http://x.localhost:8080", "http://localhost.:8080",
	} {
		if err := CheckAPIURL(u); err == nil {
			t.Errorf("%s accepted", u)
		} else if strings.Contains(err.Error(), "u:p@") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error quotes credentials: %v", err)
		}
	}
}

func TestProviderGetSet(t *testing.T) {
	var p Provider
	for k, v := range map[string]string{"auth_token": "tok", "account_sid": "AC1", "topic_arns": "arn:x", "api_url": "http://127.0.0.1:1"} {
		if err := p.Set(k, v); err != nil {
			t.Fatal(err)
		}
		if got := p.Get(k); got != v {
			t.Errorf("Get(%s) = %q, want %q", k, got, v)
		}
	}
	if p.AuthToken.Reveal() != "tok" || len(p.TopicARNs) != 1 || p.APIURL != "http://127.0.0.1:1" {
		t.Errorf("Set did not reach the fields: %+v", p)
	}
	if err := p.Set("private_key", "x"); err == nil {
		t.Error("Set accepted a key mogate.yaml cannot hold")
	}
}

// TestDidYouMean: an unknown key anywhere in the file gets the closest
// known key of its place as a suggestion when one is close (a typo, a
// swapped pair, a dash for an underscore, a missing suffix), and none
// when nothing is.
func TestDidYouMean(t *testing.T) {
	cases := []struct{ yaml, key, want string }{
		{"listn: a:1\n", "listn", "listen"},
		{"pubic_url: https://x.example\n", "pubic_url", "public_url"},
		{"log-level: info\n", "log-level", "log_level"},
		{"shutdown_dealy: 1s\n", "shutdown_dealy", "shutdown_delay"},
		{"retension: 1h\n", "retension", "retention"},
		{"limits:\n  streams_per_keys: 5\n", "limits.streams_per_keys", "streams_per_key"},
		{"limits:\n  creates_per_key_per_sec: 5\n", "limits.creates_per_key_per_sec", "creates_per_key_per_second"},
		{"api_keys:\n  - {name: a, webhook_ulr: https://x.example}\n", "api_keys[0].webhook_ulr", "webhook_url"},
		{"providers:\n  - {name: t, type: twilio, auth_tokn: x}\n", "providers[0].auth_tokn", "auth_token"},
		{"providers:\n  - {name: t, type: twilio, acount_sid: AC1}\n", "providers[0].acount_sid", "account_sid"},
		{"numbers:\n  - {number: \"+14155550100\", countires: [US]}\n", "numbers[0].countires", "countries"},
		{"numbers:\n  - {number: \"+14155550100\", wieght: 2}\n", "numbers[0].wieght", "weight"},
		{"verification:\n  code_lenght: 6\n", "verification.code_lenght", "code_length"},
		{"verification:\n  max_attempt: 6\n", "verification.max_attempt", "max_attempts"},
		{"events:\n  allow_private_destination: true\n", "events.allow_private_destination", "allow_private_destinations"},
		{"zebra: 1\n", "zebra", ""},
		{"providers:\n  - {name: t, type: twilio, colour: red}\n", "providers[0].colour", ""},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := fmt.Sprintf("unknown key %q", tc.key)
			if tc.want != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", tc.want)
			}
			var line string
			for l := range strings.Lines(err.Error()) {
				if strings.Contains(l, fmt.Sprintf("unknown key %q", tc.key)) {
					line = strings.TrimSpace(l)
				}
			}
			if !strings.HasSuffix(line, msg) {
				t.Fatalf("error line %q, want it to end in %q\n(all: %v)", line, msg, err)
			}
		})
	}
}

// TestEmptyEnv: a ${VAR} that is set but empty is refused like an unset
// one, at its line and key, naming the variable (never a value).
func TestEmptyEnv(t *testing.T) {
	y := strings.Replace(full, "${TWILIO_AUTH_TOKEN}", `"${TWILIO_AUTH_TOKEN}"`, 1)
	_, err := Parse([]byte(y), env(map[string]string{"SHOP_KEY": "shop-key-0123456789", "TWILIO_AUTH_TOKEN": "", "CODE_LEN": "8"}))
	const want = "config: line 12: providers[0].auth_token: ${TWILIO_AUTH_TOKEN} is empty"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestRedisPrefixAccepted(t *testing.T) {
	for _, p := range []string{"staging", "mogate:staging", "prod-eu_1", "ü"} {
		cfg, err := Parse([]byte(minimal+"redis_prefix: \""+p+"\"\n"), env(nil))
		if err != nil || cfg.RedisPrefix != p {
			t.Errorf("redis_prefix %q: %q %v", p, cfg.RedisPrefix, err)
		}
	}
	if cfg, err := Parse([]byte(minimal), env(nil)); err != nil || cfg.RedisPrefix != "mogate" {
		t.Errorf("default redis_prefix = %q %v, want mogate", cfg.RedisPrefix, err)
	}
}
