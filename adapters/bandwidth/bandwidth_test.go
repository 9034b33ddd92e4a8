package bandwidth

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// the provider's public docs (a public test fixture's values), plus a second message
// and a delivery receipt in the same array.
const batch = `[{"time":"2020-06-15T15:14:31.656Z","type":"message-received","to":"+19544141212","description":"Incoming message received","message":{"id":"f1708c12-e76e-40f8-9958-db3dbd3a957e","owner":"+19544141212","applicationId":"5989b095-941d-4edd-82de-64a37c535025","time":"2020-06-15T15:14:31.620Z","segmentCount":1,"direction":"in","to":["+19544141212"],"from":"+19544141299","text":"Outbound received. Testing inbound"}},
{"time":"2020-06-15T15:14:32.000Z","type":"message-received","to":"+19544141213","message":{"id":"m2","to":["+19544141213"],"from":"+19544141298","text":"second","segmentCount":2}},
{"time":"2020-06-15T15:14:33.000Z","type":"message-delivered","to":"+19544141212","message":{"id":"m3","from":"+19544141212","text":"x"}}]`

func TestBasic(t *testing.T) {
	a, _ := New(Config{Username: "user", Password: "pass"})
	ok := &adapters.Request{Header: http.Header{}}
	adapters.SetBasic(ok.Header, "user", "pass")
	if err := a.Verify(ok); err != nil {
		t.Fatal(err)
	}
	for _, creds := range [][2]string{{"user", "wrong"}, {"other", "pass"}, {"", ""}} {
		r := &adapters.Request{Header: http.Header{}}
		adapters.SetBasic(r.Header, creds[0], creds[1])
		if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
			t.Errorf("%v: %v", creds, err)
		}
	}
	if err := a.Verify(&adapters.Request{Header: http.Header{"Authorization": {"Bearer x"}}}); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Errorf("bearer: %v", err)
	}
	if err := a.Verify(&adapters.Request{Header: http.Header{}}); !errors.Is(err, adapters.ErrMissingSignature) || a.Challenge() == "" {
		t.Errorf("no credentials: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, _ := New(Config{Name: "bw", Username: "u", Password: "p"})
	ins, err := a.Parse(&adapters.Request{Body: []byte(batch)})
	if err != nil || len(ins) != 2 {
		t.Fatalf("Parse = %+v %v", ins, err)
	}
	if in := ins[0]; in.MessageID != "f1708c12-e76e-40f8-9958-db3dbd3a957e" || in.From != "+19544141299" || in.To != "+19544141212" || in.Text != "Outbound received. Testing inbound" {
		t.Errorf("first = %+v", in)
	}
	if in := ins[1]; in.To != "+19544141213" || in.Parts != 2 {
		t.Errorf("second = %+v", in)
	}
	for _, b := range []string{`{}`, `[{"type":"message-received","to":"+1","message":{"from":"+2"}}]`, `[{"type":"message-received","message":{"id":"x","from":"+2","to":["+3","+4"]}}]`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
	u, _ := url.Parse("https://x.example/webhooks/bw")
	r, _ := a.Sign(adapters.Inbound{From: "+19544141299", To: "+19544141212", Text: "1234"}, u, time.Now())
	if err := a.Verify(r); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("bandwidth") {
		f.Add(b)
	}
	f.Add(batch)
	a, _ := New(Config{Username: "u", Password: "p"})
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
