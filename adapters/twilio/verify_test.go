package twilio

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/twilio/twilio-go/client"
)

const voiceURL = "https://sms.example.com/webhooks/twilio"

// TestVerifyStirVerstat: Twilio does not say whether its signature covers
// StirVerstat. A signature over every parameter passes; one over every
// parameter but StirVerstat passes too (the fallback); nothing else does.
func TestVerifyStirVerstat(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	form, _ := url.ParseQuery(voice + "&StirVerstat=TN-Validation-Passed-A")
	without, _ := url.ParseQuery(voice)
	cases := []struct {
		name, body, sig string
		ok              bool
	}{
		{"signed over every parameter", form.Encode(), Signature("tok", voiceURL, form), true},
		{"signed without StirVerstat", form.Encode(), Signature("tok", voiceURL, without), true},
		{"signed without StirVerstat, seen with :443", form.Encode(), Signature("tok", "https://sms.example.com:443/webhooks/twilio", without), true},
		{"no StirVerstat at all", without.Encode(), Signature("tok", voiceURL, without), true},
		// The fallback drops StirVerstat only: another parameter added after signing still fails.
		{"another parameter added", form.Encode() + "&CallerName=x", Signature("tok", voiceURL, form), false},
		{"tampered caller, StirVerstat present", strings.Replace(form.Encode(), "14155550123", "14155550124", 1), Signature("tok", voiceURL, without), false},
		{"signed without StirVerstat by another token", form.Encode(), Signature("other", voiceURL, without), false},
		// No fallback without StirVerstat: dropping another parameter is not accepted.
		{"signed without CallStatus", without.Encode(), Signature("tok", voiceURL, drop(without, "CallStatus")), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Verify(req(t, "POST", voiceURL, tc.sig, tc.body))
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tc.ok && !errors.Is(err, adapters.ErrUnauthenticated) {
				t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

// TestVerifyStirVerstatGET: a voice URL set to GET carries the parameters
// in the query; the same fallback drops StirVerstat from it, keeping the
// rest of the query byte for byte.
func TestVerifyStirVerstatGET(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	without := voiceURL + "?" + voice
	with := voiceURL + "?" + strings.Replace(voice, "&FromCountry", "&StirVerstat=TN-Validation-Passed-A&FromCountry", 1)
	for _, tc := range []struct {
		name, seen, signed string
		ok                 bool
	}{
		{"signed with StirVerstat", with, with, true},
		{"signed without StirVerstat", with, without, true},
		{"signed without StirVerstat, escaped name", strings.Replace(with, "StirVerstat", "Stir%56erstat", 1), without, true},
		{"signed without another parameter", with, strings.Replace(with, "&CallStatus=ringing", "", 1), false},
		{"no StirVerstat, signed without CallStatus", without, strings.Replace(without, "&CallStatus=ringing", "", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Verify(req(t, "GET", tc.seen, Signature("tok", tc.signed, nil), ""))
			if tc.ok != (err == nil) {
				t.Fatalf("Verify = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func drop(v url.Values, k string) url.Values {
	out := url.Values{}
	for n, vs := range v {
		if n != k {
			out[n] = vs
		}
	}
	return out
}

// TestVerifyAgreesWithTwilioGo: the validator that stops at the first
// matching URL variant accepts exactly what twilio-go's RequestValidator
// accepts, over URLs with and without ports, signed with and without them.
func TestVerifyAgreesWithTwilioGo(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	ref := client.NewRequestValidator("tok")
	form := url.Values{"MessageSid": {"SM1"}, "From": {"+14155550123"}, "To": {"+14155550100"}, "Body": {"code 482913"}}
	urls := []string{
		"https://sms.example.com/webhooks/twilio", "https://sms.example.com:443/webhooks/twilio",
		"https://sms.example.com:8443/webhooks/twilio", "http://sms.example.com/webhooks/twilio",
		"http://sms.example.com:80/webhooks/twilio", "http://127.0.0.1:8080/webhooks/twilio?x=1&y=%20",
		"https://sms.example.com/webhooks/twilio?a=b#rc=2",
	}
	for _, seen := range urls {
		for _, signed := range urls {
			for _, method := range []string{"POST", "GET"} {
				params := form
				body := form.Encode()
				if method == "GET" {
					params, body = nil, ""
				}
				sig := Signature("tok", signed, params)
				r := req(t, method, seen, sig, body)
				var want bool
				if method == "GET" {
					want = ref.Validate(r.URL.String(), map[string]string{}, sig)
				} else {
					want = ref.ValidateBody(r.URL.String(), r.Body, sig)
				}
				if got := a.Verify(r) == nil; got != want {
					t.Errorf("%s seen %s signed %s: Verify ok = %v, twilio-go = %v", method, seen, signed, got, want)
				}
			}
		}
	}
}

func TestAnswer(t *testing.T) {
	a := newAdapter(t, Config{Name: "tw", AuthToken: "tok"})
	u, _ := url.Parse(voiceURL)
	for _, att := range []string{"A", "B", ""} {
		r, err := a.Sign(adapters.Inbound{Channel: adapters.ChannelCall, From: "+14155550123", To: "+16505551366", Attestation: att}, u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ins, err := a.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		status, ct, body, ok := a.Answer(r, ins)
		if !ok || status != http.StatusOK || ct != "text/xml" || string(body) != adapters.RejectCall {
			t.Errorf("attestation %q: Answer = %d %q %q %v", att, status, ct, body, ok)
		}
	}
	r, _ := a.Sign(adapters.Inbound{From: "+14155550123", To: "+16505551366", Text: "x"}, u, time.Now())
	ins, _ := a.Parse(r)
	if _, _, _, ok := a.Answer(r, ins); ok {
		t.Error("an SMS answered with a call's answer")
	}
}

// TestSignChannels: what Sign produces for each channel verifies and
// parses back to the same event.
func TestSignChannels(t *testing.T) {
	a := newAdapter(t, Config{Name: "tw", AuthToken: "tok"})
	u, _ := url.Parse(voiceURL)
	cases := []adapters.Inbound{
		{Channel: adapters.ChannelWhatsApp, MessageID: "SM1", From: "+14155550123", To: "+14155550100", Text: "code 482913"},
		{Channel: adapters.ChannelWhatsApp, MessageID: "SM2", From: "US.13491208655302741918", To: "+14155550100", Text: "code 482913", SenderHidden: true},
		{Channel: adapters.ChannelCall, MessageID: "CA1", From: "+14155550123", To: "+14155550100", Attestation: "A", SenderCountry: "US"},
		{Channel: adapters.ChannelCall, MessageID: "CA2", From: "+14155550123", To: "+14155550100", Attestation: "B"},
		{Channel: adapters.ChannelCall, MessageID: "CA3", From: "+14155550123", To: "+14155550100"},
	}
	for _, m := range cases {
		r, err := a.Sign(m, u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(r); err != nil {
			t.Fatalf("%s: Verify(Sign) = %v", m.MessageID, err)
		}
		ins, err := a.Parse(r)
		if err != nil || len(ins) != 1 {
			t.Fatalf("%s: Parse(Sign) = %v, %v", m.MessageID, ins, err)
		}
		got := ins[0]
		got.ReceivedAt, got.Raw, got.Account = time.Time{}, nil, ""
		m.Provider = "tw"
		if !reflect.DeepEqual(got, m) {
			t.Errorf("got  %+v\nwant %+v", got, m)
		}
	}
	r, _ := a.Sign(adapters.Inbound{Channel: adapters.ChannelCall, From: "+1", To: "+2"}, u, time.Now())
	if !strings.Contains(string(r.Body), "CallSid=CA") || strings.Contains(string(r.Body), "MessageSid") {
		t.Errorf("a call without MessageID: %s", r.Body)
	}
}

// BenchmarkVerify: a signature over the URL as seen costs one HMAC; the
// other port variant is computed only when that fails (issue: the handler
// spent half its time computing both). twilio-go computes both always.
// Each iteration verifies a new Request, whose form is not parsed yet, as
// the gateway's is.
func BenchmarkVerify(b *testing.B) {
	a, _ := New(Config{AuthToken: "tok"})
	form, _ := url.ParseQuery(capture)
	body := []byte(form.Encode())
	seen, _ := url.Parse("https://sms.example.com/webhooks/twilio")
	header := func(signed string) http.Header {
		h := http.Header{}
		h.Set(SignatureHeader, Signature("tok", signed, form))
		return h
	}
	asSeen, withPort := header(seen.String()), header("https://sms.example.com:443/webhooks/twilio")
	ref := client.NewRequestValidator("tok")
	b.Run("signed as seen", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if a.Verify(&adapters.Request{Method: "POST", URL: seen, Header: asSeen, Body: body}) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("signed with the other port variant", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if a.Verify(&adapters.Request{Method: "POST", URL: seen, Header: withPort, Body: body}) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("twilio-go reference", func(b *testing.B) {
		b.ReportAllocs()
		sig := asSeen.Get(SignatureHeader)
		for b.Loop() {
			if !ref.ValidateBody(seen.String(), body, sig) {
				b.Fatal("refused")
			}
		}
	})
}

// FuzzVerifyAgreesWithTwilioGo: over arbitrary URLs, bodies and signed
// URLs, Verify accepts exactly what twilio-go's RequestValidator accepts,
// and more only through the StirVerstat fallback.
func FuzzVerifyAgreesWithTwilioGo(f *testing.F) {
	f.Add("https://sms.example.com/webhooks/twilio", "https://sms.example.com:443/webhooks/twilio", capture, false)
	f.Add("http://127.0.0.1:8080/w?a=1", "http://127.0.0.1/w?a=1", "", true)
	f.Add(voiceURL, voiceURL, voice+"&StirVerstat=TN-Validation-Passed-A", false)
	f.Add(voiceURL+"?bodySHA256="+sdkBodyHash, voiceURL+"?bodySHA256="+sdkBodyHash, `{"property": "value", "boolean": true}`, false)
	a, _ := New(Config{AuthToken: "tok"})
	ref := client.NewRequestValidator("tok")
	f.Fuzz(func(t *testing.T, seen, signed, body string, get bool) {
		u, err := url.Parse(seen)
		if err != nil {
			return
		}
		method, params := "POST", url.Values(nil)
		if get {
			method, body = "GET", ""
		} else if params, err = url.ParseQuery(body); err != nil {
			params = nil
		}
		sig := Signature("tok", signed, params)
		r := &adapters.Request{Method: method, URL: u, Header: http.Header{SignatureHeader: {sig}}, Body: []byte(body)}
		var want bool
		if get {
			want = ref.Validate(u.String(), map[string]string{}, sig)
		} else {
			want = ref.ValidateBody(u.String(), []byte(body), sig)
		}
		got := a.Verify(r) == nil
		if want && !got {
			t.Fatalf("twilio-go accepts, Verify refuses: %s %s signed %s body %q", method, seen, signed, body)
		}
		if got && !want && !params.Has(stirParam) && !u.Query().Has(stirParam) {
			t.Fatalf("Verify accepts, twilio-go refuses: %s %s signed %s body %q", method, seen, signed, body)
		}
	})
}

// TestLargeSignerNotKept: a signer that sorted a form of many parameters
// is dropped, not kept for reuse with its sort space.
func TestLargeSignerNotKept(t *testing.T) {
	a, err := New(Config{AuthToken: "token"})
	if err != nil {
		t.Fatal(err)
	}
	st := a.signer()
	st.sorted = make(adapters.Params, 0, 10*maxKeptParams)
	a.release(st)
	if got := a.signer(); got == st {
		t.Fatal("a signer with sort space for 10240 parameters was kept")
	}
}
