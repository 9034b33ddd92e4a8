package bird

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// Vectors from messagebird/go-rest-api signature_jwt/testdata/reference.json.
const (
	refSecret = "36efdd1aace2e26cd490f0d951138253bef2f7c6d34d18981da781555cc4cebb"
	// valid for https://example.com/path?bar=1&foo=2 with payload "Hello, World!"
	refWithPayload = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI5M2U1NTAwNi1hMGU4LTQ1MjYtYTE5MC1mYTVmZjAwZWExMTYiLCJ1cmxfaGFzaCI6IjQxZjA1ZjBkZGQwYTIyYWIyMDlhYzQ2ZjQ3YzQ1NzJkOWNlZmEyNTdlZDc0YjI0MDA0YmFlNzUzZWNlNmMyNjAiLCJwYXlsb2FkX2hhc2giOiJkZmZkNjAyMWJiMmJkNWIwYWY2NzYyOTA4MDllYzNhNTMxOTFkZDgxYzdmNzBhNGIyODY4OGEzNjIxODI5ODZmIn0._H--TOuYFLpeEH39-rg5E3IHVkjHozBcaKVWPRC5m9I"
	// valid for https://example.com/ with no payload
	refNoPayload = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiI1OWEyNDRkYy1lOWFkLTRlMjMtOTc3OC0zNzFmYWEyMzhmNzIiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.6Fp0rVOsRr1fj9S2GidXAfkmPVofKr8_RTffC6G6r2E"
	// nbf in the future at the reference time
	refNotYet = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ4MjgwMCwiZXhwIjoxNjI1NDgyODYwLCJqdGkiOiJmOWY4YzM4Mi0yNDQ5LTQzMTEtYjcyYi0xZGY3MTY4NzkzMWUiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.ZELgDFNGhjZH9CffQKcq3sytBe2I0KciLxpBhcfstHQ"
	// expired at the reference time
	refExpired = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3NTYwMCwiZXhwIjoxNjI1NDc1NjYwLCJqdGkiOiI1ZjAyZjUyMi02MDMwLTQ2YzgtYjVhMy0wMTI0NjQ3OGQ4YmMiLCJ1cmxfaGFzaCI6IjBmMTE1ZGIwNjJiN2MwZGQwMzBiMTY4NzhjOTlkZWE1YzM1NGI0OWRjMzdiMzhlYjg4NDYxNzljNzc4M2U5ZDcifQ.45MSST3B_2PsjNUeiuW54_vUQgVw4rBXrdWrOUEz3lM"
	// signed for ?foo=1&bar=2, presented on ?foo=1&bar=2 but hashed for the sorted form
	refWrongURL = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJhNzVjOTA5Ni1lODIzLTQ0MmItODVmMi03ZDNjOWQ5YjcyNmIiLCJ1cmxfaGFzaCI6IjZhMDIyZDgzNGMxODMzMGJhYWQ4YTJiZDYxMzUxNzNlZDIxNjEwYTQ1NDUxNmJlMGRmM2YxY2MwMTUxNjEwZWEifQ.z6Sw1XQIM0wuEQGBhXBdawDIIrtMg2XnmA_bpDq53pE"
)

var refTime = time.Date(2021, 7, 5, 12, 0, 0, 0, time.FixedZone("", 2*3600))

func TestReferenceVectors(t *testing.T) {
	cases := []struct {
		name, token, url, body string
		ok                     bool
	}{
		{"with payload", refWithPayload, "https://example.com/path?bar=1&foo=2", "Hello, World!", true},
		{"no payload", refNoPayload, "https://example.com/", "", true},
		{"payload on a token without payload_hash", refNoPayload, "https://example.com/", "Hello, World!", false},
		{"payload tampered", refWithPayload, "https://example.com/path?bar=1&foo=2", "Hello, World?", false},
		{"no payload on a token with payload_hash", refWithPayload, "https://example.com/path?bar=1&foo=2", "", false},
		{"not yet valid", refNotYet, "https://example.com/", "", false},
		{"expired", refExpired, "https://example.com/", "", false},
		{"other URL", refWrongURL, "https://example.com/path?foo=1&bar=2", "", false},
		{"wrong key", refNoPayload, "https://example.com/", "", false},
	}
	for _, tc := range cases {
		key := refSecret
		if tc.name == "wrong key" {
			key = "other"
		}
		err := VerifyJWT(tc.token, key, tc.url, []byte(tc.body), refTime)
		if tc.ok != (err == nil) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// alg none is refused.
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJNZXNzYWdlQmlyZCIsIm5iZiI6MTYyNTQ3OTIwMCwiZXhwIjoxNjI1NDc5MjYwLCJqdGkiOiJ4IiwidXJsX2hhc2giOiIwZjExNWRiMDYyYjdjMGRkMDMwYjE2ODc4Yzk5ZGVhNWMzNTRiNDlkYzM3YjM4ZWI4ODQ2MTc5Yzc3ODNlOWQ3In0."
	if err := VerifyJWT(none, refSecret, "https://example.com/", nil, refTime); err == nil {
		t.Error("alg none accepted")
	}
}

const sample = `{"service":"channels","event":"sms.inbound","payload":{"id":"96a0b5fa-a986-453d-be5c-3117f989f025","channelId":"614208aa-b153-4d5d-9989-2fddfc0ce4c3","sender":{"contact":{"id":"32cf5eee-f940-422c-ab8c-5f753aad5efd","identifierKey":"phonenumber","identifierValue":"+31612345678"}},"receiver":{"connector":{"id":"86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},"body":{"type":"text","text":{"text":"Sample incoming text message"}},"parts":[{"platformReference":"e8077d803532c0b5937c639b60216938"}],"status":"delivered","direction":"incoming","lastStatusAt":"2022-12-22T08:32:50.736Z","createdAt":"2022-12-22T08:32:50.736Z","updatedAt":"2022-12-22T08:32:50.736Z"}}`

func TestBirdHMAC(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := New(Config{Name: "bird", SigningKey: "k", Now: func() time.Time { return now }})
	u, _ := url.Parse("https://sms.example.com/webhooks/bird")
	mk := func(ts int64, key string) *adapters.Request {
		s := strconv.FormatInt(ts, 10)
		h := http.Header{}
		h.Set(TimestampHeader, s)
		h.Set(SignatureHeader, base64.StdEncoding.EncodeToString(HMAC(key, s, u.String(), []byte(sample))))
		return &adapters.Request{Method: "POST", URL: u, Header: h, Body: []byte(sample)}
	}
	if err := a.Verify(mk(now.Unix(), "k")); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*adapters.Request{"wrong key": mk(now.Unix(), "x"), "stale": mk(now.Add(-6*time.Minute).Unix(), "k")} {
		if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := a.Verify(&adapters.Request{URL: u, Header: http.Header{}, Body: []byte(sample)}); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Errorf("unsigned: %v", err)
	}
}

func TestParseAndSign(t *testing.T) {
	a, _ := New(Config{Name: "bird", SigningKey: "k"})
	ins, err := a.Parse(&adapters.Request{Body: []byte(sample)})
	if err != nil || len(ins) != 1 || ins[0].From != "+31612345678" || ins[0].To != "" || ins[0].Text != "Sample incoming text message" || ins[0].MessageID != "96a0b5fa-a986-453d-be5c-3117f989f025" {
		t.Fatalf("Parse = %+v %v", ins, err)
	}
	u, _ := url.Parse("https://sms.example.com/webhooks/bird")
	r, _ := a.Sign(adapters.Inbound{From: "+31612345678", Text: "1234"}, u, time.Now())
	if err := a.Verify(r); err != nil {
		t.Fatalf("HMAC round trip: %v", err)
	}
	r.Header = http.Header{JWTHeader: {""}}
	if err := a.Resign(r, time.Now()); err != nil || a.Verify(r) != nil {
		t.Fatalf("JWT round trip: %v %v", err, a.Verify(r))
	}
	for _, b := range []string{`{"event":"sms.inbound","payload":{"sender":{"contact":{"identifierValue":"+1"}}}}`, `{"event":"sms.inbound","payload":{"id":"x"}}`, `nope`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("bird") {
		f.Add(b)
	}
	f.Add(sample)
	a, _ := New(Config{SigningKey: "k"})
	f.Fuzz(func(t *testing.T, body string) {
		ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.From == "" || in.MessageID == "" {
				t.Fatalf("accepted %+v", in)
			}
		}
	})
}
