package sinch

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// Vector from sinch-sdk-java HmacAuthenticationValidationTest.
const (
	sdkSecret = "foo_secret1234"
	sdkBody   = `{"app_id":"","accepted_time":"2021-10-18T17:49:13.813615Z","project_id":"e2df3a34-a71b-4448-9db5-a8d2baad28e4","contact_create_notification":{"contact":{"id":"01FJA8B466Y0R2GNXD78MD9SM1","channel_identities":[{"channel":"SMS","identity":"48123456789","app_id":""}],"display_name":"New Test Contact","email":"new.contact@email.com","external_id":"","metadata":"","language":"EN_US"}},"message_metadata":""}`
	sdkSig    = "6bpJoRmFoXVjfJIVglMoJzYXxnoxRujzR4k2GOXewOE="
	sdkNonce  = "01FJA8B4A7BM43YGWSG9GBV067"
	sdkTS     = "1634579353"
)

func sdkRequest(body, alg string) *adapters.Request {
	u, _ := url.Parse("https://sms.example.com/webhooks/sinch")
	h := http.Header{}
	h.Set(SignatureHeader, sdkSig)
	h.Set(AlgorithmHeader, alg)
	h.Set(NonceHeader, sdkNonce)
	h.Set(TimestampHeader, sdkTS)
	return &adapters.Request{Method: "POST", URL: u, Header: h, Body: []byte(body)}
}

func TestSDKVector(t *testing.T) {
	if got := Signature(sdkSecret, []byte(sdkBody), sdkNonce, sdkTS); got != sdkSig {
		t.Fatalf("Signature = %s", got)
	}
	at := func(d time.Duration) *Adapter {
		a, _ := New(Config{WebhookSecret: sdkSecret, Now: func() time.Time { return time.Unix(1634579353, 0).Add(d) }})
		return a
	}
	if err := at(time.Minute).Verify(sdkRequest(sdkBody, "HmacSHA256")); err != nil {
		t.Fatalf("vector refused: %v", err)
	}
	for name, tc := range map[string]struct {
		a   *Adapter
		req *adapters.Request
	}{
		"other body":           {at(0), sdkRequest("not expected body", "HmacSHA256")},
		"algorithm not pinned": {at(0), sdkRequest(sdkBody, "HmacSHA1")},
		"stale":                {at(6 * time.Minute), sdkRequest(sdkBody, "HmacSHA256")},
		"future":               {at(-6 * time.Minute), sdkRequest(sdkBody, "HmacSHA256")},
	} {
		if err := tc.a.Verify(tc.req); !errors.Is(err, adapters.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	wrong, _ := New(Config{WebhookSecret: "not expected secret", Now: func() time.Time { return time.Unix(1634579353, 0) }})
	if err := wrong.Verify(sdkRequest(sdkBody, "HmacSHA256")); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Errorf("wrong secret: %v", err)
	}
	r := sdkRequest(sdkBody, "HmacSHA256")
	r.Header.Del(SignatureHeader)
	if err := at(0).Verify(r); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Errorf("missing: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, _ := New(Config{Name: "sinch", WebhookSecret: "s"})
	// sinch-sdk-java InboundTextDto.json
	body := `{"body":"a body","client_reference":"a client reference","from":"+11203494390","id":"01FC66621XXXXX119Z8PMV1QPA","operator_id":"35000","received_at":"2019-08-24T14:17:22Z","sent_at":"2019-08-24T14:15:22Z","to":"11203453453","type":"mo_text"}`
	ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
	if err != nil || len(ins) != 1 {
		t.Fatal(ins, err)
	}
	if in := ins[0]; in.From != "+11203494390" || in.To != "+11203453453" || in.Text != "a body" || in.MessageID != "01FC66621XXXXX119Z8PMV1QPA" || !in.ReceivedAt.Equal(time.Date(2019, 8, 24, 14, 17, 22, 0, time.UTC)) {
		t.Errorf("Parse = %+v", in)
	}
	if ins, err := a.Parse(&adapters.Request{Body: []byte(`{"type":"mo_binary","id":"x","from":"1","to":"2","body":"AAEC","udh":"0500"}`)}); err != nil || len(ins) != 0 {
		t.Errorf("mo_binary = %v %v", ins, err)
	}
	for _, b := range []string{`{"type":"mo_text","from":"1","to":"2","body":"x"}`, `{"type":"mo_text","id":"x","to":"2","body":"x"}`, `{"type":"mo_text","id":"x","from":"1","to":"2","body":{}}`, `[]`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
}

func TestSignRoundTrip(t *testing.T) {
	a, _ := New(Config{Name: "sinch", WebhookSecret: "sec"})
	u, _ := url.Parse("https://x.example/webhooks/sinch")
	r, err := a.Sign(adapters.Inbound{From: "+11203494390", To: "+11203453453", Text: "code 4829"}, u, time.Now())
	if err != nil || a.Verify(r) != nil {
		t.Fatalf("Sign/Verify: %v %v", err, a.Verify(r))
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("sinch") {
		f.Add(b)
	}
	f.Add(`{"type":"mo_text","id":"x","from":"+1","to":"2","body":"hi"}`)
	a, _ := New(Config{WebhookSecret: "s"})
	f.Fuzz(func(t *testing.T, body string) {
		ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.From == "" || in.To == "" || in.MessageID == "" {
				t.Fatalf("accepted %+v", in)
			}
		}
	})
}
