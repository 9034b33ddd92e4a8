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
	"github.com/mogate/mogate/adapters/adapterstest"
)

// Vectors from twilio-go client/request_validator_test.go (auth token "12345").
const (
	sdkToken     = "12345"
	sdkURL       = "https://mycompany.com/myapp.php?foo=1&bar=2"
	sdkSignature = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	sdkBodyHash  = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
)

var sdkParams = url.Values{
	"Digits": {"1234"}, "CallSid": {"CA1234567890ABCDE"}, "To": {"+18005551212"}, "Caller": {"+14158675309"},
	"From": {"+14158675309"}, "ReasonConferenceEnded": {"test"}, "Reason": {"Participant"},
}

func newAdapter(t *testing.T, c Config) *Adapter {
	t.Helper()
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func req(t *testing.T, method, rawURL, sig string, body string) *adapters.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	if sig != "" {
		h.Set(SignatureHeader, sig)
	}
	return &adapters.Request{Method: method, URL: u, Header: h, Body: []byte(body)}
}

func TestSignatureMatchesSDKVector(t *testing.T) {
	if got := Signature(sdkToken, sdkURL, sdkParams); got != sdkSignature {
		t.Fatalf("Signature = %s, want %s", got, sdkSignature)
	}
}

func TestVerifySDKVectors(t *testing.T) {
	a := newAdapter(t, Config{Name: "twilio", AuthToken: sdkToken})
	form := sdkParams.Encode()
	cases := []struct {
		name, method, url, sig, body string
		ok                           bool
	}{
		{"form POST", "POST", sdkURL, sdkSignature, form, true},
		{"explicit :443 signed without port", "POST", strings.Replace(sdkURL, ".com", ".com:443", 1), sdkSignature, form, true},
		{"other port signed without it", "POST", strings.Replace(sdkURL, ".com", ".com:1234", 1), sdkSignature, form, true},
		{"http signed without port", "POST", strings.Replace(sdkURL, "https", "http", 1), "n2xBNyzSW7rfYStDtOFiFMv7qNo=", form, true},
		{"json body with bodySHA256", "POST", sdkURL + "&bodySHA256=" + sdkBodyHash, "a9nBmqA0ju/hNViExpshrM61xv4=", `{"property": "value", "boolean": true}`, true},
		{"json body alone", "POST", "https://mycompany.com/myapp.php?bodySHA256=" + sdkBodyHash, "y77kIzt2vzLz71DgmJGsen2scGs=", `{"property": "value", "boolean": true}`, true},
		{"form body vector", "POST", sdkURL, "NBdBDr/T/lgjI+tlgpXjKZQZs/k=", "property=value&boolean=true", true},
		{"params sorted wrongly", "POST", sdkURL, "95+Bu0JVPi0r/SsESZCVf0dWAjw=", form, false},
		{"tampered body", "POST", sdkURL, sdkSignature, strings.Replace(form, "1234", "1235", 1), false},
		{"tampered json body", "POST", sdkURL + "&bodySHA256=" + sdkBodyHash, "a9nBmqA0ju/hNViExpshrM61xv4=", `{"property": "value", "boolean": false}`, false},
		{"other path", "POST", strings.Replace(sdkURL, "myapp", "other", 1), sdkSignature, form, false},
		{"wrong signature", "POST", sdkURL, "WRONG SIGNATURE", form, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Verify(req(t, tc.method, tc.url, tc.sig, tc.body))
			if tc.ok && err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !tc.ok && !errors.Is(err, adapters.ErrUnauthenticated) {
				t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestVerifyPortVariantsOfOurSignature(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	form := url.Values{"MessageSid": {"SM1"}, "From": {"+1"}, "To": {"+2"}, "Body": {"x"}}
	withPort := "https://sms.example.com:443/webhooks/twilio"
	noPort := "https://sms.example.com/webhooks/twilio"
	// Twilio may sign either form; mogate may see either form.
	for _, signed := range []string{withPort, noPort} {
		for _, seen := range []string{withPort, noPort} {
			if err := a.Verify(req(t, "POST", seen, Signature("tok", signed, form), form.Encode())); err != nil {
				t.Errorf("signed %s seen %s: %v", signed, seen, err)
			}
		}
	}
}

func TestVerifyGET(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	u := "https://sms.example.com/webhooks/twilio?MessageSid=SM1&From=%2B14155550123&To=%2B14155550100&Body=482913"
	sig := Signature("tok", u, nil)
	if err := a.Verify(req(t, "GET", u, sig, "")); err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(req(t, "GET", strings.Replace(u, "482913", "482914", 1), sig, "")); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("tampered query: %v", err)
	}
	ins, err := a.Parse(req(t, "GET", u, sig, ""))
	if err != nil || len(ins) != 1 || ins[0].Text != "482913" || ins[0].From != "+14155550123" {
		t.Fatalf("Parse GET = %+v, %v", ins, err)
	}
}

func TestVerifyMissingSignature(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok"})
	err := a.Verify(req(t, "POST", "https://x.example/w", "", "a=b"))
	if !errors.Is(err, adapters.ErrMissingSignature) || !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("err = %v", err)
	}
}

func TestAccountSIDEnforced(t *testing.T) {
	a := newAdapter(t, Config{AuthToken: "tok", AccountSID: "ACmine"})
	u, _ := url.Parse("https://sms.example.com/webhooks/twilio")
	r, err := a.Sign(adapters.Inbound{From: "+1", To: "+2", Text: "x"}, u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r); err != nil {
		t.Fatalf("own account: %v", err)
	}
	other := newAdapter(t, Config{AuthToken: "tok", AccountSID: "ACother"})
	if err := other.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("other account accepted: %v", err)
	}
}

// The payload shape of Twilio's public docs.
const capture = "ToCountry=US&ToState=CA&SmsMessageSid=SM60566ee207e123ee2765abcc55c9b9c9&NumMedia=0&ToCity=SAN+BRUNO&FromZip=94030&SmsSid=SM60566ee207e123ee2765abcc55c9b9c9&FromState=CA&SmsStatus=received&FromCity=SAN+BRUNO&Body=Your+code+482913&FromCountry=US&To=%2B16505551366&ToZip=94030&NumSegments=1&ReferralNumMedia=0&MessageSid=SM60566ee207e123ee2765abcc55c9b9c9&AccountSid=ACae0e356ccba96d16d8d4f6f9518684a3&From=%2B16505558893&ApiVersion=2010-04-01"

// A Twilio voice request in the shape of CHANNELS.md's sample, without StirVerstat.
const voice = "AccountSid=AC0&ApiVersion=2010-04-01&CallSid=CA5f7b&CallStatus=ringing&Direction=inbound&From=%2B14155550123&To=%2B16505551366&FromCountry=US&ToCountry=US"

func TestParse(t *testing.T) {
	a := newAdapter(t, Config{Name: "tw", AuthToken: "tok"})
	cases := []struct {
		name, body string
		want       adapters.Inbound
		err        bool
	}{
		{"capture", capture, adapters.Inbound{Provider: "tw", MessageID: "SM60566ee207e123ee2765abcc55c9b9c9", From: "+16505558893", To: "+16505551366", Text: "Your code 482913", Account: "ACae0e356ccba96d16d8d4f6f9518684a3", SenderCountry: "US"}, false},
		{"unicode and plus-as-space", "MessageSid=SM2&From=%2B447700900001&To=%2B447700900123&Body=C%C3%B3digo+%EF%BC%94%EF%BC%98%EF%BC%92", adapters.Inbound{Provider: "tw", MessageID: "SM2", From: "+447700900001", To: "+447700900123", Text: "Código ４８２"}, false},
		{"legacy SmsSid only", "SmsSid=SM3&From=%2B1&To=%2B2&Body=x", adapters.Inbound{Provider: "tw", MessageID: "SM3", From: "+1", To: "+2", Text: "x"}, false},
		{"reassembled long message", "MessageSid=SM4&From=%2B1&To=%2B2&Body=long&NumSegments=3", adapters.Inbound{Provider: "tw", MessageID: "SM4", From: "+1", To: "+2", Text: "long", Parts: 3}, false},
		{"whatsapp", "MessageSid=SM7&From=whatsapp%3A%2B14155550123&To=whatsapp%3A%2B14155550100&Body=code+482913&WaId=14155550123&ProfileName=Lee&FromCountry=us",
			adapters.Inbound{Provider: "tw", MessageID: "SM7", From: "+14155550123", To: "+14155550100", Text: "code 482913", Channel: adapters.ChannelWhatsApp, SenderCountry: "US"}, false},
		{"whatsapp username sender", "MessageSid=SM8&From=whatsapp%3AUS.13491208655302741918&To=whatsapp%3A%2B14155550100&Body=code+482913",
			adapters.Inbound{Provider: "tw", MessageID: "SM8", From: "US.13491208655302741918", To: "+14155550100", Text: "code 482913", Channel: adapters.ChannelWhatsApp, SenderHidden: true}, false},
		{"whatsapp digits without +", "MessageSid=SM9&From=whatsapp%3A14155550123&To=whatsapp%3A%2B14155550100&Body=x",
			adapters.Inbound{Provider: "tw", MessageID: "SM9", From: "+14155550123", To: "+14155550100", Text: "x", Channel: adapters.ChannelWhatsApp, SenderHidden: true}, false},
		{"whatsapp sender to an sms number", "MessageSid=SM10&From=whatsapp%3A%2B14155550123&To=%2B14155550100&Body=x", adapters.Inbound{}, true},
		{"voice attested A", voice + "&StirVerstat=TN-Validation-Passed-A",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, Attestation: "A", SenderCountry: "US"}, false},
		{"voice attested B", voice + "&StirVerstat=TN-Validation-Passed-B",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, Attestation: "B", SenderCountry: "US"}, false},
		{"voice attested C", voice + "&StirVerstat=TN-Validation-Passed-C",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, Attestation: "C", SenderCountry: "US"}, false},
		{"voice validation failed A", voice + "&StirVerstat=TN-Validation-Failed-A",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, SenderCountry: "US"}, false},
		{"voice no validation", voice + "&StirVerstat=No-TN-Validation",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, SenderCountry: "US"}, false},
		{"voice Telnyx-style A spelling", voice + "&StirVerstat=TN-Validation-Passed",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, SenderCountry: "US"}, false},
		{"voice without StirVerstat", voice,
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, SenderCountry: "US"}, false},
		{"voice Body ignored", voice + "&Body=482913&StirVerstat=TN-Validation-Passed-A",
			adapters.Inbound{Provider: "tw", Account: "AC0", MessageID: "CA5f7b", From: "+14155550123", To: "+16505551366", Channel: adapters.ChannelCall, Attestation: "A", SenderCountry: "US"}, false},
		{"whatsapp call never attested", "CallSid=CA1&From=whatsapp%3A%2B14155550123&To=whatsapp%3A%2B14155550100&StirVerstat=TN-Validation-Passed-A",
			adapters.Inbound{Provider: "tw", MessageID: "CA1", From: "+14155550123", To: "+14155550100", Channel: adapters.ChannelCall}, false},
		{"message with a CallSid is a message", "MessageSid=SM11&CallSid=CA1&From=%2B1&To=%2B2&Body=x",
			adapters.Inbound{Provider: "tw", MessageID: "SM11", From: "+1", To: "+2", Text: "x"}, false},
		{"repeated StirVerstat", voice + "&StirVerstat=TN-Validation-Failed-A&StirVerstat=TN-Validation-Passed-A", adapters.Inbound{}, true},
		{"voice without caller", "CallSid=CA1&To=%2B2", adapters.Inbound{}, true},
		{"no sender", "MessageSid=SM5&To=%2B2&Body=x", adapters.Inbound{}, true},
		{"no receiver", "MessageSid=SM5&From=%2B2&Body=x", adapters.Inbound{}, true},
		{"no id", "From=%2B1&To=%2B2&Body=x", adapters.Inbound{}, true},
		{"repeated Body", "MessageSid=SM6&From=%2B1&To=%2B2&Body=x&Body=482913", adapters.Inbound{}, true},
		{"bad form", "MessageSid=%zz", adapters.Inbound{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ins, err := a.Parse(req(t, "POST", "https://x.example/webhooks/tw", "", tc.body))
			if tc.err {
				if !errors.Is(err, adapters.ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || len(ins) != 1 {
				t.Fatalf("Parse = %v, %v", ins, err)
			}
			got := ins[0]
			if got.ReceivedAt.IsZero() || string(got.Raw) != tc.body {
				t.Errorf("ReceivedAt/Raw not set: %+v", got)
			}
			got.ReceivedAt, got.Raw = time.Time{}, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestSignRoundTrip(t *testing.T) {
	a := newAdapter(t, Config{Name: "tw", AuthToken: "tok"})
	u, _ := url.Parse("http://127.0.0.1:8080/webhooks/tw")
	r, err := a.Sign(adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: "482913 & = +"}, u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(r); err != nil {
		t.Fatalf("Verify(Sign) = %v", err)
	}
	ins, err := a.Parse(r)
	if err != nil || ins[0].Text != "482913 & = +" || !strings.HasPrefix(ins[0].MessageID, "SM") {
		t.Fatalf("Parse(Sign) = %+v, %v", ins, err)
	}
	status, ct, body := a.Ack()
	if status != 200 || ct != "text/xml" || string(body) != `<?xml version="1.0" encoding="UTF-8"?><Response/>` {
		t.Errorf("Ack = %d %s %s", status, ct, body)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("twilio") {
		f.Add(b)
	}
	f.Add(capture)
	f.Add("MessageSid=SM1&From=%2B1&To=%2B2&Body=%F0%9F%98%80")
	f.Add(voice + "&StirVerstat=TN-Validation-Passed-A")
	f.Add("MessageSid=SM7&From=whatsapp%3A%2B14155550123&To=whatsapp%3A%2B14155550100&Body=x")
	f.Add("MessageSid=SM8&From=whatsapp%3AUS.1349&To=whatsapp%3A%2B14155550100&Body=x")
	a, _ := New(Config{AuthToken: "tok"})
	f.Fuzz(func(t *testing.T, body string) {
		u, _ := url.Parse("https://x.example/w")
		r := &adapters.Request{Method: "POST", URL: u, Header: http.Header{}, Body: []byte(body)}
		ins, err := a.Parse(r)
		if err == nil && (len(ins) != 1 || ins[0].From == "" || ins[0].To == "" || ins[0].MessageID == "") {
			t.Fatalf("accepted without sender, receiver or id: %+v", ins)
		}
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if err == nil {
			v, _ := url.ParseQuery(body)
			in := ins[0]
			if in.Attestation == "A" && (in.Channel != adapters.ChannelCall || v.Get("StirVerstat") != "TN-Validation-Passed-A") {
				t.Fatalf("attestation A without TN-Validation-Passed-A: %q", body)
			}
			if in.Channel == adapters.ChannelCall && in.Text != "" {
				t.Fatalf("a call with text: %+v", in)
			}
			if in.Channel == adapters.ChannelWhatsApp && !in.SenderHidden && !isPhone(in.From) {
				t.Fatalf("a WhatsApp sender that is not a phone number, not hidden: %+v", in)
			}
		}
		_ = a.Verify(r)
	})
}
