package plivo

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
	plivosdk "github.com/plivo/plivo-go/v7"
)

// Vectors from plivo-go utils_test.go.
var sdkParams = map[string]string{
	"Direction": "outbound", "From": "19792014278", "ALegUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
	"CallStatus": "in-progress", "BillRate": "0.002", "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
	"To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com", "ALegRequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
	"CallUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36", "RequestUUID": "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36",
	"SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1", "SessionStart": "2020-04-08 11:34:33.238707", "Event": "StartApp",
}

const (
	sdkToken = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
	sdkNonce = "31627761595286130198"
)

func TestSDKVectorsV3(t *testing.T) {
	cases := []struct{ url, method, sig string }{
		{"https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d", "POST", "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="},
		{"https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d", "GET", "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ="},
		{"https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml", "POST", "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="},
		{"https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml", "GET", "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			u, _ := url.Parse(tc.url)
			if got := SignatureV3(sdkToken, u, tc.method, sdkNonce, sdkParams); got != tc.sig {
				t.Fatalf("SignatureV3 = %s, want %s", got, tc.sig)
			}
		})
	}
	// Through the adapter: a POST whose form body carries the vector's parameters.
	a, _ := New(Config{AuthToken: sdkToken})
	form := url.Values{}
	for k, v := range sdkParams {
		form.Set(k, v)
	}
	u, _ := url.Parse(cases[0].url)
	h := http.Header{HeaderV3: {"bogus=," + cases[0].sig}, HeaderV3Nonce: {sdkNonce}}
	if err := a.Verify(&adapters.Request{Method: "POST", URL: u, Header: h, Body: []byte(form.Encode())}); err != nil {
		t.Fatalf("adapter rejects SDK vector (comma list): %v", err)
	}
}

func TestSDKVectorV2(t *testing.T) {
	u, _ := url.Parse("https://answer.url")
	if got := SignatureV2("my_auth_token", u, "12345"); got != "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc=" {
		t.Fatalf("SignatureV2 = %s", got)
	}
}

// TestCrossCheckWithPlivoGo compares our signatures with plivo-go's on random inputs.
func TestCrossCheckWithPlivoGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	word := func() string {
		const chars = "abcXYZ019 +-_.~%"
		b := make([]byte, 1+r.IntN(8))
		for i := range b {
			b[i] = chars[r.IntN(len(chars))]
		}
		return string(b)
	}
	for i := range 300 {
		q := url.Values{}
		for range r.IntN(3) {
			q.Set(word(), word())
		}
		raw := "https://sms.example.com/webhooks/plivo"
		if r.IntN(3) == 0 {
			raw += "/"
		}
		if len(q) > 0 {
			raw += "?" + q.Encode()
		}
		params := map[string]string{}
		for range r.IntN(5) {
			params[word()] = word()
		}
		method := []string{"POST", "GET"}[r.IntN(2)]
		nonce := word()
		u, _ := url.Parse(raw)
		if ours, theirs := SignatureV3("tok", u, method, nonce, params), plivosdk.ComputeSignatureV3("tok", raw, method, nonce, params); ours != theirs {
			t.Fatalf("case %d %s %s %v: ours %s, plivo-go %s", i, method, raw, params, ours, theirs)
		}
		if ours, theirs := SignatureV2("tok", u, nonce), plivosdk.ComputeSignatureV2("tok", raw, nonce); ours != theirs {
			t.Fatalf("V2 case %d: ours %s, plivo-go %s", i, ours, theirs)
		}
	}
}

func signed(t *testing.T, a *Adapter, text string) *adapters.Request {
	t.Helper()
	u, _ := url.Parse("https://sms.example.com/webhooks/plivo")
	r, err := a.Sign(adapters.Inbound{From: "+14155550123", To: "+14155550199", Text: text}, u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerify(t *testing.T) {
	a, _ := New(Config{Name: "plivo", AuthToken: "tok"})
	only := func(r *adapters.Request, keep ...string) *adapters.Request {
		h := http.Header{}
		for _, k := range keep {
			h.Set(k, r.Header.Get(k))
		}
		return &adapters.Request{Method: r.Method, URL: r.URL, Header: h, Body: r.Body}
	}
	good := signed(t, a, "482913")
	if err := a.Verify(good); err != nil {
		t.Fatalf("V3+V2: %v", err)
	}
	if err := a.Verify(only(good, HeaderV3, HeaderV3Nonce)); err != nil {
		t.Fatalf("V3 only: %v", err)
	}
	if err := a.Verify(only(good, HeaderV2, HeaderV2Nonce)); err != nil {
		t.Fatalf("V2 only: %v", err)
	}
	ma := only(good, HeaderV3Nonce)
	ma.Header.Set(HeaderMaV3, good.Header.Get(HeaderV3))
	if err := a.Verify(ma); err != nil {
		t.Fatalf("Ma-V3: %v", err)
	}

	tampered := *good
	tampered.Body = []byte(strings.Replace(string(good.Body), "482913", "482914", 1))
	if err := a.Verify(&tampered); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("V3 tampered body: %v", err)
	}
	// V2 does not sign the body: the adapter reports its nonce, unsigned
	// body and all, for the gateway to spend (gateway TestPlivoV2Nonce).
	v2 := only(good, HeaderV2, HeaderV2Nonce)
	v2.Body = tampered.Body
	if n, signed := a.Nonce(v2); n != good.Header.Get(HeaderV2Nonce) || signed {
		t.Fatalf("Nonce(V2 only) = %q, %v", n, signed)
	}
	if n, signed := a.Nonce(good); n != good.Header.Get(HeaderV2Nonce) || !signed {
		t.Fatalf("Nonce(V3+V2) = %q, %v", n, signed)
	}
	wrongHost := *good
	wrongHost.URL, _ = url.Parse("https://evil.example.com/webhooks/plivo")
	if err := a.Verify(&wrongHost); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("other URL: %v", err)
	}
	if err := a.Verify(only(good)); !errors.Is(err, adapters.ErrMissingSignature) {
		t.Fatalf("no headers: %v", err)
	}
	other, _ := New(Config{AuthToken: "other"})
	if err := other.Verify(good); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("other token: %v", err)
	}
}

func TestParse(t *testing.T) {
	a, _ := New(Config{Name: "plivo", AuthID: "MA1", AuthToken: "tok"})
	u, _ := url.Parse("https://x.example/w")
	// The payload of Plivo's public docs.
	body := "From=14155550100&To=14155550199&Text=Code+482913&Type=sms&MessageUUID=2a7f3b1e-8c6d-11ee-9f3a-0242ac120002&Units=2&TotalRate=0.00000&TotalAmount=0.00000&MessageIntent=&PowerpackUUID="
	ins, err := a.Parse(&adapters.Request{Method: "POST", URL: u, Body: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	if in := ins[0]; in.From != "+14155550100" || in.To != "+14155550199" || in.Text != "Code 482913" || in.MessageID != "2a7f3b1e-8c6d-11ee-9f3a-0242ac120002" || in.Parts != 2 || in.Account != "MA1" {
		t.Errorf("Parse = %+v", in)
	}
	gu, _ := url.Parse("https://x.example/w?From=1415&To=1416&Body=mms+text&MessageUUID=u1")
	ins, err = a.Parse(&adapters.Request{Method: "GET", URL: gu})
	if err != nil || ins[0].Text != "mms text" {
		t.Errorf("GET/Body = %+v %v", ins, err)
	}
	for _, b := range []string{"To=1&MessageUUID=x", "From=1&MessageUUID=x", "From=1&To=2", "From=1&To=2&MessageUUID=x&Text=a&Text=b"} {
		if _, err := a.Parse(&adapters.Request{Method: "POST", URL: u, Body: []byte(b)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", b, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("plivo") {
		f.Add(b)
	}
	f.Add("From=14155550100&To=14155550199&Text=Code+482913&MessageUUID=x")
	a, _ := New(Config{AuthToken: "tok"})
	f.Fuzz(func(t *testing.T, body string) {
		u, _ := url.Parse("https://x.example/w")
		r := &adapters.Request{Method: "POST", URL: u, Header: http.Header{HeaderV3: {"x"}, HeaderV3Nonce: {"n"}}, Body: []byte(body)}
		ins, err := a.Parse(r)
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		if err == nil && (ins[0].From == "" || ins[0].To == "" || ins[0].MessageID == "") {
			t.Fatalf("accepted %+v", ins[0])
		}
		if a.Verify(r) == nil {
			t.Fatal("bogus signature accepted")
		}
	})
}
