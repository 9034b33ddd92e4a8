package vonagemessages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// Vector from vonage-python-sdk jwt/tests/test_verify_jwt.py.
const (
	sdkToken  = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZTC29y6CGM"
	sdkSecret = "qwertyuiopasdfghjklzxcvbnm123456"
)

// Payload of the provider's public docs (vonage-java-sdk InboundMessageTest values).
const sample = `{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","to":"447700900000","from":"447700900001","timestamp":"2020-01-01T15:43:21Z","channel":"sms","message_type":"text","text":"Hello, world!","sms":{"num_messages":"2","total_count":"3","keyword":"HELLO"},"usage":{"currency":"EUR","price":"0.0333"}}`

func TestSDKVector(t *testing.T) {
	now := time.Unix(1697634680, 0)
	if _, err := VerifyToken(sdkToken, sdkSecret, now); err != nil {
		t.Fatalf("valid vector rejected: %v", err)
	}
	if _, err := VerifyToken(sdkToken, "asdf", now); err == nil {
		t.Fatal("invalid secret accepted")
	}
	// The vector has no payload_hash: the adapter must refuse it.
	a, _ := New(Config{SignatureSecret: sdkSecret, Now: func() time.Time { return now }})
	u, _ := url.Parse("https://x.example/w")
	err := a.Verify(&adapters.Request{Method: "POST", URL: u, Header: http.Header{"Authorization": {"Bearer " + sdkToken}}, Body: []byte(sample)})
	if !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("token without payload_hash: %v", err)
	}
}

func token(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	sum := sha256.Sum256([]byte(sample))
	hash := hex.EncodeToString(sum[:])
	good := jwt.MapClaims{"iat": now.Unix(), "jti": "j", "iss": "Vonage", "payload_hash": hash, "api_key": "a1b2c3d"}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for a, b := range good {
			c[a] = b
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	cases := []struct {
		name, auth, body string
		apiKey           string
		ok, missing      bool
	}{
		{"valid", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), good), sample, "", true, false},
		{"valid, api_key pinned", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), good), sample, "a1b2c3d", true, false},
		{"other account", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), good), sample, "zzz", false, false},
		{"tampered body", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), good), sample[:len(sample)-1] + " }", "", false, false},
		{"wrong secret", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("other"), good), sample, "", false, false},
		{"HS512 refused", "Bearer " + token(t, jwt.SigningMethodHS512, []byte("sec"), good), sample, "", false, false},
		{"alg none refused", "Bearer " + noneTok, sample, "", false, false},
		{"stale iat", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), with("iat", now.Add(-6*time.Minute).Unix())), sample, "", false, false},
		{"future iat", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), with("iat", now.Add(6*time.Minute).Unix())), sample, "", false, false},
		{"no iat", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), with("iat", nil)), sample, "", false, false},
		{"no payload_hash", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), with("payload_hash", nil)), sample, "", false, false},
		{"expired exp", "Bearer " + token(t, jwt.SigningMethodHS256, []byte("sec"), with("exp", now.Add(-time.Second).Unix())), sample, "", false, false},
		{"no header", "", sample, "", false, true},
		{"basic auth", "Basic dXNlcjpwYXNz", sample, "", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := New(Config{SignatureSecret: "sec", APIKey: tc.apiKey, Now: func() time.Time { return now }})
			u, _ := url.Parse("https://x.example/w")
			h := http.Header{}
			if tc.auth != "" {
				h.Set("Authorization", tc.auth)
			}
			err := a.Verify(&adapters.Request{Method: "POST", URL: u, Header: h, Body: []byte(tc.body)})
			if tc.ok != (err == nil) {
				t.Fatalf("Verify = %v, want ok=%v", err, tc.ok)
			}
			if !tc.ok && (!errors.Is(err, adapters.ErrUnauthenticated) || errors.Is(err, adapters.ErrMissingSignature) != tc.missing) {
				t.Fatalf("Verify = %v (missing=%v)", err, tc.missing)
			}
		})
	}
}

func TestParse(t *testing.T) {
	a, _ := New(Config{Name: "vm", SignatureSecret: "sec"})
	u, _ := url.Parse("https://x.example/w")
	ins, err := a.Parse(&adapters.Request{Method: "POST", URL: u, Body: []byte(sample)})
	if err != nil {
		t.Fatal(err)
	}
	in := ins[0]
	if in.MessageID != "aaaaaaaa-bbbb-cccc-dddd-0123456789ab" || in.From != "+447700900001" || in.To != "+447700900000" || in.Text != "Hello, world!" || in.Parts != 2 || in.PartsRef != "" {
		t.Errorf("Parse = %+v", in)
	}
	if !in.ReceivedAt.Equal(time.Date(2020, 1, 1, 15, 43, 21, 0, time.UTC)) {
		t.Errorf("ReceivedAt = %v", in.ReceivedAt)
	}
	for _, body := range []string{
		`{"message_uuid":"x","from":"1","to":"2","channel":"messenger","message_type":"text","text":"hi"}`,
		`{"message_uuid":"x","from":"447700900001","to":"447700900000","channel":"whatsapp","message_type":"image","image":{"url":"https://x"}}`,
	} {
		if ins, err := a.Parse(&adapters.Request{Body: []byte(body)}); err != nil || len(ins) != 0 {
			t.Errorf("other channel or type = %v, %v", ins, err)
		}
	}
	if in := ins[0]; in.Channel != "" || in.SenderHidden {
		t.Errorf("an SMS = channel %q hidden %v", in.Channel, in.SenderHidden)
	}
}

// TestParseWhatsApp: channel whatsapp is the whatsapp channel; a sender
// whose phone number Meta withheld is marked hidden.
func TestParseWhatsApp(t *testing.T) {
	a, _ := New(Config{Name: "vm", SignatureSecret: "sec"})
	const head = `{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","to":"447700900000","timestamp":"2020-01-01T15:43:21Z","channel":"whatsapp","message_type":"text","text":"Acme code 482913",`
	for _, tc := range []struct {
		name, body, from string
		hidden           bool
	}{
		{"phone sender", head + `"from":"447700900001","profile":{"name":"Lee"},"whatsapp":{"sender":{"wa_id":"447700900001","user_id":"GB.1349"}}}`, "+447700900001", false},
		{"no whatsapp object", head + `"from":"447700900001"}`, "+447700900001", false},
		{"wa_id withheld", head + `"from":"447700900001","whatsapp":{"sender":{"user_id":"GB.1349","parent_user_id":"GB.ENT.1"}}}`, "GB.1349", true},
		{"from is a user id", head + `"from":"GB.1349","profile":{"username":"@lee"}}`, "GB.1349", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := a.Parse(&adapters.Request{Body: []byte(tc.body)})
			if err != nil || len(ins) != 1 {
				t.Fatal(ins, err)
			}
			in := ins[0]
			if in.Channel != adapters.ChannelWhatsApp || in.From != tc.from || in.SenderHidden != tc.hidden || in.To != "+447700900000" || in.Text != "Acme code 482913" {
				t.Errorf("Parse = %+v", in)
			}
		})
	}
	for _, body := range []string{`{"from":"1","to":"2","channel":"sms"}`, `{"message_uuid":"x","to":"2"}`, `{"message_uuid":"x","from":"2"}`, `[]`, `nope`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(body)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", body, err)
		}
	}
}

func TestSignRoundTrip(t *testing.T) {
	a, _ := New(Config{Name: "vm", SignatureSecret: "sec", APIKey: "k"})
	u, _ := url.Parse("http://127.0.0.1:8080/webhooks/vm")
	r, err := a.Sign(adapters.Inbound{From: "+447700900001", To: "+447700900123", Text: "código ٤٨٢٩١٣"}, u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r); err != nil {
		t.Fatal(err)
	}
	if ins, err := a.Parse(r); err != nil || ins[0].Text != "código ٤٨٢٩١٣" || ins[0].To != "+447700900123" {
		t.Fatalf("Parse = %+v %v", ins, err)
	}
	for _, m := range []adapters.Inbound{
		{From: "+447700900001", To: "+447700900123", Text: "482913", Channel: adapters.ChannelWhatsApp},
		{From: "GB.1349", To: "+447700900123", Text: "482913", Channel: adapters.ChannelWhatsApp, SenderHidden: true},
	} {
		r, err := a.Sign(m, u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ins, err := a.Parse(r)
		if err != nil || len(ins) != 1 || ins[0].Channel != m.Channel || ins[0].From != m.From || ins[0].SenderHidden != m.SenderHidden {
			t.Fatalf("whatsapp round trip of %+v = %+v %v", m, ins, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("vonage-messages") {
		f.Add(b)
	}
	f.Add(sample)
	a, _ := New(Config{SignatureSecret: "s"})
	f.Fuzz(func(t *testing.T, body string) {
		ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		if err == nil && len(ins) == 1 && (ins[0].From == "" || ins[0].To == "" || ins[0].MessageID == "") {
			t.Fatalf("accepted %+v", ins[0])
		}
	})
}
