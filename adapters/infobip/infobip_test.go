package infobip

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// The docs' sample (from the provider's public docs) with a second result.
const docs = `{"results":[{"messageId":"817790313235066447","from":"385916242493","to":"385921004026","text":"QUIZ Correct answer is Paris","cleanText":"Correct answer is Paris","keyword":"QUIZ","receivedAt":"2016-10-06T09:28:39.220+0000","smsCount":1,"price":{"pricePerMessage":0,"currency":"EUR"},"callbackData":"callbackData"},{"messageId":"2","from":"385916242494","to":"385921004026","text":"two","smsCount":3}],"messageCount":2,"pendingMessageCount":0}`

func TestVerifyAndParse(t *testing.T) {
	a, _ := New(Config{Name: "ib", Username: "u", Password: "p"})
	r := &adapters.Request{Header: http.Header{}, Body: []byte(docs)}
	if err := a.Verify(r); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Fatalf("unsigned: %v", err)
	}
	adapters.SetBasic(r.Header, "u", "wrong")
	if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("wrong password: %v", err)
	}
	adapters.SetBasic(r.Header, "u", "p")
	if err := a.Verify(r); err != nil {
		t.Fatal(err)
	}
	ins, err := a.Parse(r)
	if err != nil || len(ins) != 2 {
		t.Fatal(ins, err)
	}
	if in := ins[0]; in.From != "+385916242493" || in.To != "+385921004026" || in.Text != "QUIZ Correct answer is Paris" || !in.ReceivedAt.Equal(time.Date(2016, 10, 6, 9, 28, 39, 220e6, time.UTC)) {
		t.Errorf("first = %+v", in)
	}
	if ins[1].Parts != 3 {
		t.Errorf("second = %+v", ins[1])
	}
	for _, b := range []string{`[]`, `{"results":[{"from":"1","to":"2"}]}`, `{"results":[{"messageId":"1","to":"2"}]}`} {
		if _, err := a.Parse(&adapters.Request{Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
	u, _ := url.Parse("https://x.example/webhooks/ib")
	s, _ := a.Sign(adapters.Inbound{From: "+385916242493", To: "+385921004026", Text: "1234"}, u, time.Now())
	if err := a.Verify(s); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("infobip") {
		f.Add(b)
	}
	f.Add(docs)
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
