package smsgate

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// The docs' sms:received example (from the provider's public docs).
const docs = `{"deviceId":"ffffffffceb0b1db0000018e937c815b","event":"sms:received","id":"Ey6ECgOkVVFjz3CL48B8C","payload":{"messageId":"abc123","message":"Android is always a sweet treat!","sender":"6505551212","recipient":"+1234567890","simNumber":1,"receivedAt":"2024-06-22T15:46:11.000+07:00"},"webhookId":"LreFUt-Z3sSq0JufY9uWB"}`

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := New(Config{SigningKey: "key", Now: func() time.Time { return now }})
	mk := func(ts int64, key, body string) *adapters.Request {
		s := strconv.FormatInt(ts, 10)
		h := http.Header{}
		h.Set(TimestampHeader, s)
		h.Set(SignatureHeader, Signature(key, []byte(body), s))
		return &adapters.Request{Method: "POST", Header: h, Body: []byte(body)}
	}
	if err := a.Verify(mk(now.Unix(), "key", docs)); err != nil {
		t.Fatal(err)
	}
	tampered := mk(now.Unix(), "key", docs)
	tampered.Body = append(tampered.Body, ' ')
	for name, r := range map[string]*adapters.Request{
		"wrong key": mk(now.Unix(), "other", docs), "stale": mk(now.Add(-6*time.Minute).Unix(), "key", docs),
		"future": mk(now.Add(6*time.Minute).Unix(), "key", docs), "tampered": tampered,
	} {
		if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := a.Verify(&adapters.Request{Header: http.Header{}}); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Errorf("unsigned: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, _ := New(Config{Name: "phone", SigningKey: "k"})
	ins, err := a.Parse(&adapters.Request{Body: []byte(docs)})
	if err != nil || len(ins) != 1 {
		t.Fatal(ins, err)
	}
	// The national sender is passed on as given; the envelope id is the message id.
	if in := ins[0]; in.From != "6505551212" || in.To != "+1234567890" || in.MessageID != "Ey6ECgOkVVFjz3CL48B8C" || !in.ReceivedAt.Equal(time.Date(2024, 6, 22, 8, 46, 11, 0, time.UTC)) {
		t.Errorf("Parse = %+v", in)
	}
	noRecipient := `{"event":"sms:received","id":"i1","payload":{"message":"x","phoneNumber":"+15551234567","recipient":null}}`
	if ins, err := a.Parse(&adapters.Request{Body: []byte(noRecipient)}); err != nil || ins[0].To != "" || ins[0].From != "+15551234567" {
		t.Errorf("no recipient = %+v %v", ins, err)
	}
	if ins, err := a.Parse(&adapters.Request{Body: []byte(`{"event":"system:ping","id":"x"}`)}); err != nil || len(ins) != 0 {
		t.Errorf("ping = %v %v", ins, err)
	}
	for _, b := range []string{`{"event":"sms:received","payload":{"sender":"1"}}`, `{"event":"sms:received","id":"x","payload":{}}`, `x`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
	u, _ := url.Parse("https://x.example/webhooks/phone")
	r, _ := a.Sign(adapters.Inbound{From: "6505551212", Text: "1234"}, u, time.Now())
	if err := a.Verify(r); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("smsgate") {
		f.Add(b)
	}
	f.Add(docs)
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
