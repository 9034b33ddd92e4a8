package registry

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// allTypes is one entry of every provider type, with test keys.
var allTypes = []config.Provider{
	{Name: "tw", Type: "twilio", AuthToken: "t"},
	{Name: "vo", Type: "vonage", SignatureSecret: "s", SignatureMethod: "sha256"},
	{Name: "vm", Type: "vonage-messages", SignatureSecret: "s"},
	{Name: "pl", Type: "plivo", AuthToken: "t"},
	{Name: "tx", Type: "telnyx", PublicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="},
	{Name: "si", Type: "sinch", WebhookSecret: "s"},
	{Name: "bi", Type: "bird", SigningKey: "k"},
	{Name: "bw", Type: "bandwidth", Username: "u", Password: "p"},
	{Name: "ib", Type: "infobip", Username: "u", Password: "p"},
	{Name: "sg", Type: "smsgate", SigningKey: "k"},
	{Name: "sn", Type: "sns", TopicARNs: []string{"arn:aws:sns:us-east-1:1:t"}},
	{Name: "wa", Type: "whatsapp", AppSecret: "s", VerifyToken: "v"},
}

func TestBuild(t *testing.T) {
	got, err := Build(allTypes, Env{})
	if err != nil || len(got) != 12 {
		t.Fatalf("Build = %v, %v", got, err)
	}
	for name, a := range got {
		if _, ok := a.(adapters.Signer); !ok {
			t.Errorf("%s cannot sign: sms simulate would not work for it", name)
		}
		if _, ok := a.(adapters.Resigner); !ok {
			t.Errorf("%s cannot re-sign: the conformance suite would not work for it", name)
		}
	}
	if _, ok := got["wa"].(adapters.Handshaker); !ok {
		t.Error("whatsapp cannot answer Meta's GET handshake")
	}
}

// TestRequestURLNeverModified: the gateway shares one parsed
// Request.URL between the webhooks of one URL, so no adapter may change
// it: each verifies, parses and answers a request it signed (or, when it
// cannot sign with the test's keys, one it did not), and the URL — with
// user info, a port, a query and a fragment — is as it was.
func TestRequestURLNeverModified(t *testing.T) {
	got, err := Build(allTypes, Env{})
	if err != nil {
		t.Fatal(err)
	}
	const raw = "https://u:p@sms.example.com:8443/webhooks/x?a=1&b=%20c#frag"
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	signed := 0
	for name, a := range got {
		target, _ := url.Parse(raw)
		r := &adapters.Request{Method: "POST", URL: target}
		if sr, err := a.(adapters.Signer).Sign(adapters.Inbound{
			Provider: name, MessageID: "m1", From: "+14155550100", To: "+14155550199",
			Text: "code 123456", ReceivedAt: now,
		}, target, now); err == nil {
			r, signed = sr, signed+1
		}
		u := r.URL
		want := *u
		wantUser := u.User.String()
		_ = a.Verify(r)
		_, _ = a.Parse(r)
		if h, ok := a.(adapters.Handshaker); ok {
			h.Handshake(r)
		}
		if r.URL != u || *u != want || u.User.String() != wantUser {
			t.Errorf("%s changed the request's URL: %v, want %v", name, u, raw)
		}
	}
	if signed < len(got)/2 {
		t.Errorf("only %d of %d adapters signed a request: the check reads too little", signed, len(got))
	}
}

// TestChannels: every row says which channels its numbers receive and
// serve by default (docs/configuration.md).
func TestChannels(t *testing.T) {
	want := map[string][2][]string{ // type: receivable, default
		"twilio": {{"sms", "whatsapp", "call"}, {"sms"}}, "vonage-messages": {{"sms", "whatsapp"}, {"sms"}},
		"telnyx": {{"sms", "call"}, {"sms"}}, "whatsapp": {{"whatsapp"}, {"whatsapp"}},
	}
	for _, typ := range Types() {
		row, _ := Lookup(typ)
		w, ok := want[typ]
		if !ok {
			w = [2][]string{{"sms"}, {"sms"}}
		}
		if !reflect.DeepEqual(row.Channels, w[0]) || !reflect.DeepEqual(row.DefaultChannels, w[1]) {
			t.Errorf("%s: channels %v default %v, want %v default %v", typ, row.Channels, row.DefaultChannels, w[0], w[1])
		}
	}
}

func TestBuildJoinsErrors(t *testing.T) {
	_, err := Build([]config.Provider{
		{Name: "a", Type: "twilio"},
		{Name: "b", Type: "nope"},
	}, Env{})
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestBuildPanicsOnDuplicate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	_, _ = Build([]config.Provider{{Name: "a", Type: "twilio", AuthToken: "t"}, {Name: "a", Type: "twilio", AuthToken: "t"}}, Env{})
}

// TestTable: every row is whole — its keys are fields of config.Provider,
// a key is flagged secret exactly when its field is a config.Secret, and
// a type has an adapter and either a REST client or manual steps.
func TestTable(t *testing.T) {
	secretType := reflect.TypeOf(config.Secret(""))
	fields := map[string]reflect.Type{}
	pt := reflect.TypeOf(config.Provider{})
	for i := range pt.NumField() {
		fields[pt.Field(i).Tag.Get("yaml")] = pt.Field(i).Type
	}
	for _, typ := range Types() {
		row, _ := Lookup(typ)
		if row.Adapter == nil || (row.REST == nil) == (row.Manual == "") {
			t.Errorf("%s: needs an adapter and exactly one of REST and Manual", typ)
		}
		for _, k := range row.Keys {
			ft, ok := fields[k.Name]
			if !ok {
				t.Errorf("%s: key %s is not a field of config.Provider", typ, k.Name)
				continue
			}
			if (ft == secretType) != k.Secret {
				t.Errorf("%s: key %s: secret flag %v, field type %v", typ, k.Name, k.Secret, ft)
			}
		}
	}
}

// TestCheck: the table's rules, on whole files, at the key and line.
func TestCheck(t *testing.T) {
	const base = "api_keys:\n  - {name: shop, key: shop-key-0123456789}\nnumbers:\n  - {number: \"+14155550100\", provider: t}\nproviders:\n"
	cases := []struct {
		name, providers string
		want            []string
	}{
		{"key of another type", "  - {name: t, type: twilio, auth_token: x, auth_id: MA1}\n", []string{"line 6", "providers[0].auth_id", "not a key of type twilio"}},
		{"missing required key", "  - {name: t, type: plivo, auth_id: MA1}\n", []string{"line 6", "providers[0].auth_token", "required"}},
		{"unknown type", "  - {name: t, type: twillio, auth_token: x}\n", []string{"line 6", `unknown provider type "twillio"`, "twilio, vonage"}},
		{"bad vonage method", "  - {name: t, type: vonage, signature_secret: x, signature_method: crc}\n", []string{"signature_method", "md5hash"}},
		{"bad telnyx key", "  - {name: t, type: telnyx, public_key: abc}\n", []string{"public_key", "32-byte"}},
		{"api_secret is vonage's", "  - {name: t, type: twilio, auth_token: x, api_secret: y}\n", []string{"providers[0].api_secret", "not a key of type twilio"}},
		{"smsgate without a number", "  - {name: t, type: twilio, auth_token: x}\n  - {name: phone, type: smsgate, signing_key: k}\n", []string{"line 7: providers[1]", `entry "phone" must have exactly one number`, "has 0"}},
		{"twilio token with a newline", "  - {name: t, type: twilio, auth_token: ${TOK_NL}}\n", []string{"line 6", "providers[0].auth_token", "control character"}},
		{"twilio token in quotes", "  - {name: t, type: twilio, auth_token: ${TOK_Q}}\n", []string{"line 6", "providers[0].auth_token", "quote"}},
		{"twilio token with a space", "  - {name: t, type: twilio, auth_token: \"${TOK_SP}\"}\n", []string{"line 6", "providers[0].auth_token", "whitespace"}},
		{"twilio token in typographic quotes", "  - {name: t, type: twilio, auth_token: \"\u201c0123456789abcdef0123456789abcdef\u201d\"}\n", []string{"line 6", "providers[0].auth_token", "not ASCII"}},
		{"plivo token with a space", "  - {name: t, type: plivo, auth_id: MA1, auth_token: \"ab cd\"}\n", []string{"line 6", "providers[0].auth_token", "whitespace"}},
		{"any secret with a control character", "  - {name: t, type: sinch, webhook_secret: ${TOK_NL}}\n", []string{"line 6", "providers[0].webhook_secret", "control character"}},
		{"whatsapp without verify_token", "  - {name: t, type: twilio, auth_token: x}\n  - {name: m, type: whatsapp, app_secret: s}\n", []string{"line 7", "providers[1].verify_token", "required for type whatsapp"}},
		{"whatsapp number without phone_number_id", "  - {name: t, type: whatsapp, app_secret: s, verify_token: v}\n", []string{"line 4", "numbers[0].phone_number_id", `required for a number of provider "t" (type whatsapp)`}},
	}
	env := map[string]string{"TOK_NL": "0123456789abcdef0123456789abcdef\n", "TOK_Q": `"0123456789abcdef0123456789abcdef"`, "TOK_SP": "0123456789abcdef 0123456789abcdef"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.providers), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
	two := "api_keys:\n  - {name: shop, key: shop-key-0123456789}\nproviders:\n  - {name: bird, type: bird, signing_key: k}\n" +
		"numbers:\n  - {number: \"+31970102030\", provider: bird}\n  - {number: \"+31970102031\", provider: bird}\n"
	if _, err := Parse([]byte(two), func(string) (string, bool) { return "", false }); err == nil ||
		!strings.Contains(err.Error(), `line 4: providers[0]: bird payloads lack the receiving number, so entry "bird" must have exactly one number in numbers:, has 2`) {
		t.Errorf("bird with two numbers: %v", err)
	}
	full := base + "  - {name: t, type: twilio, auth_token: x, account_sid: AC1, api_url: \"http://127.0.0.1:9\"}\n" +
		"  - {name: v, type: vonage, signature_secret: s, api_key: k, api_secret: sec, api_url: \"http://127.0.0.1:9\"}\n" +
		"  - {name: p, type: plivo, auth_id: MA1, auth_token: x, api_url: \"http://127.0.0.1:9\"}\n" +
		"  - {name: x, type: telnyx, public_key: \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\", api_key: KEY1, api_url: \"http://127.0.0.1:9\"}\n"
	cfg, err := Parse([]byte(full), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Providers[1].SignatureMethod != "md5hash" {
		t.Errorf("vonage signature_method default = %q", cfg.Providers[1].SignatureMethod)
	}
	for _, p := range cfg.Providers {
		if c, err := REST(p, nil); err != nil || c == nil {
			t.Errorf("%s: REST = %v, %v", p.Type, c, err)
		}
	}
	for i, want := range [][]string{{"sms"}} {
		if got := cfg.Numbers[i].Channels; !reflect.DeepEqual(got, want) {
			t.Errorf("numbers[%d].channels = %v, want the type's default %v", i, got, want)
		}
	}
	if got := Secrets(cfg.Providers[1]); len(got) != 3 {
		t.Errorf("vonage secrets = %d values, want signature_secret, api_key, api_secret", len(got))
	}
}

// TestChannelsAccepted: the channels a type receives, and the defaults.
func TestChannelsAccepted(t *testing.T) {
	y := "api_keys:\n  - {name: shop, key: shop-key-0123456789}\nproviders:\n" +
		"  - {name: tw, type: twilio, auth_token: x}\n  - {name: vm, type: vonage-messages, signature_secret: s}\n" +
		"  - {name: tx, type: telnyx, public_key: \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}\n" +
		"  - {name: meta, type: whatsapp, app_secret: s, verify_token: v}\n" +
		"numbers:\n  - {number: \"+14155550100\", provider: tw, channels: [sms, whatsapp, call]}\n" +
		"  - {number: \"+14155550101\", provider: vm, channels: [whatsapp]}\n" +
		"  - {number: \"+14155550102\", provider: tx, channels: [call, sms]}\n" +
		"  - {number: \"+15550984277\", provider: meta, phone_number_id: \"114896151713920\"}\n" +
		"  - {number: \"+15550984278\", provider: meta, phone_number_id: 114896151713921}\n"
	cfg, err := Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"sms", "whatsapp", "call"}, {"whatsapp"}, {"call", "sms"}, {"whatsapp"}, {"whatsapp"}}
	for i, w := range want {
		if got := cfg.Numbers[i].Channels; !reflect.DeepEqual(got, w) {
			t.Errorf("numbers[%d].channels = %v, want %v", i, got, w)
		}
	}
	if cfg.Numbers[3].PhoneNumberID != "114896151713920" || cfg.Numbers[4].PhoneNumberID != "114896151713921" {
		t.Errorf("phone_number_id = %q, %q", cfg.Numbers[3].PhoneNumberID, cfg.Numbers[4].PhoneNumberID)
	}
}

// TestChannelRules: a number's channels and phone_number_id against its
// provider type's row, at the key and line.
func TestChannelRules(t *testing.T) {
	const base = "api_keys:\n  - {name: shop, key: shop-key-0123456789}\nproviders:\n  - {name: tw, type: twilio, auth_token: x}\n"
	cases := []struct {
		name, providers, numbers string
		want                     []string
	}{
		{"phone_number_id on a twilio number", "", "  - {number: \"+14155550101\", provider: tw, phone_number_id: \"1\"}\n",
			[]string{"line 6", "numbers[0].phone_number_id", `only numbers of a whatsapp provider have one (provider "tw" is of type twilio)`}},
		{"sms on a whatsapp number", "  - {name: m, type: whatsapp, app_secret: s, verify_token: v}\n", "  - {number: \"+14155550101\", provider: m, phone_number_id: \"1\",\n     channels: [whatsapp, sms]}\n",
			[]string{"line 8", "numbers[0].channels[1]", `provider "m" (type whatsapp) cannot receive sms; it receives whatsapp`}},
		{"whatsapp on a plivo number", "  - {name: p, type: plivo, auth_token: x}\n", "  - {number: \"+14155550101\", provider: p, channels: [whatsapp]}\n",
			[]string{"line 7", "numbers[0].channels[0]", `provider "p" (type plivo) cannot receive whatsapp; it receives sms`}},
		{"call on a vonage-messages number", "  - {name: v, type: vonage-messages, signature_secret: x}\n", "  - {number: \"+14155550101\", provider: v, channels: [sms, call]}\n",
			[]string{"line 7", "numbers[0].channels[1]", "cannot receive call; it receives sms, whatsapp"}},
		{"whatsapp on a telnyx number", "  - {name: x, type: telnyx, public_key: \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"}\n", "  - {number: \"+14155550101\", provider: x, channels: [whatsapp]}\n",
			[]string{"numbers[0].channels[0]", "cannot receive whatsapp; it receives sms, call"}},
		{"unknown channel", "", "  - {number: \"+14155550101\", provider: tw, channels: [sms, whatsap]}\n",
			[]string{"line 6", "numbers[0].channels[1]", `"whatsap" is not a channel (sms, whatsapp, call) (did you mean "whatsapp"?)`}},
		{"same phone_number_id twice", "  - {name: m, type: whatsapp, app_secret: s, verify_token: v}\n",
			"  - {number: \"+14155550101\", provider: m, phone_number_id: \"7\"}\n  - {number: \"+14155550102\", provider: m, phone_number_id: \"7\"}\n",
			[]string{"line 8", "numbers[1].phone_number_id", "the same phone_number_id as numbers[0]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(base+tc.providers+"numbers:\n"+tc.numbers), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatal("accepted")
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
