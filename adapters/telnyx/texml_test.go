package telnyx

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// A TeXML voice request in the shape of Telnyx's "TeXML call initiated"
// reference, without the attestation parameters.
const texml = "AccountSid=0f512bda-ae1e-4597-8e11-e5f5686b97d3&CallSid=v3%3AabcDEF&CallStatus=ringing&CallerId=%2B14155550123&ConnectionId=1542950386652912121&From=%2B14155550123&To=%2B13129457420&Timestamp=2026-12-07T04%3A00%3A00Z&SequenceNumber=1"

func TestParseTeXML(t *testing.T) {
	pub, _, priv := keys()
	now := time.Unix(1_800_000_000, 0)
	a, _ := New(Config{Name: "telnyx", PublicKey: pub, Now: func() time.Time { return now }})
	call := func(att string) adapters.Inbound {
		return adapters.Inbound{Provider: "telnyx", Account: "0f512bda-ae1e-4597-8e11-e5f5686b97d3", MessageID: "v3:abcDEF",
			From: "+14155550123", To: "+13129457420", Channel: adapters.ChannelCall, Attestation: att}
	}
	cases := []struct {
		name, body string
		want       adapters.Inbound
		err        bool
	}{
		{"attested A, validated", texml + "&ShakenStirAttestation=A&ShakenStirValidated=true", call("A"), false},
		{"attested B, validated", texml + "&ShakenStirAttestation=B&ShakenStirValidated=true", call("B"), false},
		{"attested C, validated", texml + "&ShakenStirAttestation=C&ShakenStirValidated=true", call("C"), false},
		{"A not validated", texml + "&ShakenStirAttestation=A&ShakenStirValidated=false", call(""), false},
		{"A without the validation flag", texml + "&ShakenStirAttestation=A", call(""), false},
		{"validated without a level", texml + "&ShakenStirValidated=true", call(""), false},
		{"unknown level", texml + "&ShakenStirAttestation=D&ShakenStirValidated=true", call(""), false},
		{"lower case", texml + "&ShakenStirAttestation=a&ShakenStirValidated=True", call("A"), false},
		{"no attestation", texml, call(""), false},
		{"repeated attestation", texml + "&ShakenStirAttestation=B&ShakenStirAttestation=A&ShakenStirValidated=true", adapters.Inbound{}, true},
		{"no CallSid", "From=%2B14155550123&To=%2B13129457420", adapters.Inbound{}, true},
		{"no caller", "CallSid=x&To=%2B13129457420", adapters.Inbound{}, true},
		{"no callee", "CallSid=x&From=%2B13129457420", adapters.Inbound{}, true},
		{"bad form", "CallSid=%zz", adapters.Inbound{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := signedReq(priv, now.Unix(), tc.body)
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if err := a.Verify(r); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			ins, err := a.Parse(r)
			if tc.err {
				if !errors.Is(err, adapters.ErrMalformed) {
					t.Fatalf("Parse = %v, %v; want ErrMalformed", ins, err)
				}
				return
			}
			if err != nil || len(ins) != 1 {
				t.Fatalf("Parse = %v, %v", ins, err)
			}
			got := ins[0]
			got.ReceivedAt, got.Raw = time.Time{}, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			status, ct, body, ok := a.Answer(r, ins)
			if !ok || status != http.StatusOK || ct != "text/xml" || string(body) != adapters.RejectCall {
				t.Errorf("Answer = %d %q %q %v", status, ct, body, ok)
			}
		})
	}
	// A GET carries its parameters in the query, which Telnyx does not sign.
	get := signedReq(priv, now.Unix(), "")
	get.Method = http.MethodGet
	get.URL, _ = url.Parse("https://x.example/webhooks/telnyx?" + texml + "&ShakenStirAttestation=A&ShakenStirValidated=true")
	if ins, err := a.Parse(get); !errors.Is(err, adapters.ErrMalformed) {
		t.Errorf("a GET TeXML request: Parse = %v, %v; want ErrMalformed", ins, err)
	}
	// A form body is signed like a JSON one: a tampered form fails.
	r := signedReq(priv, now.Unix(), texml+"&ShakenStirAttestation=B&ShakenStirValidated=true")
	r.Body = []byte(texml + "&ShakenStirAttestation=A&ShakenStirValidated=true")
	if err := a.Verify(r); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Errorf("tampered attestation: Verify = %v", err)
	}
}

func TestParseLineTypeAndCarrier(t *testing.T) {
	pub, _, _ := keys()
	a, _ := New(Config{Name: "telnyx", PublicKey: pub})
	ins, err := a.Parse(&adapters.Request{Body: []byte(docsBody)})
	if err != nil || len(ins) != 1 {
		t.Fatal(ins, err)
	}
	if ins[0].LineType != adapters.LineMobile || ins[0].Carrier != "T-MOBILE USA, INC." {
		t.Errorf("LineType, Carrier = %q, %q; want mobile, T-MOBILE USA, INC.", ins[0].LineType, ins[0].Carrier)
	}
	if _, _, _, ok := a.Answer(nil, ins); ok {
		t.Error("an SMS answered as a call")
	}
	bare := `{"data":{"event_type":"message.received","payload":{"id":"m1","from":{"phone_number":"+1"},"to":[{"phone_number":"+2","line_type":"Wireline"}],"text":"x"}}}`
	ins, _ = a.Parse(&adapters.Request{Body: []byte(bare)})
	if len(ins) != 1 || ins[0].LineType != "" || ins[0].Carrier != "" {
		t.Errorf("no sender line type: %+v (the receiver's is not the sender's)", ins)
	}
}

func TestSignCallsAndSignals(t *testing.T) {
	pub, seedB64, _ := keys()
	a, _ := New(Config{Name: "telnyx", PublicKey: pub, PrivateKey: seedB64})
	u, _ := url.Parse("https://x.example/webhooks/telnyx")
	for _, m := range []adapters.Inbound{
		{Channel: adapters.ChannelCall, MessageID: "v3:1", From: "+14155550123", To: "+13129457420", Attestation: "A"},
		{Channel: adapters.ChannelCall, MessageID: "v3:2", From: "+14155550123", To: "+13129457420", Attestation: "B"},
		{Channel: adapters.ChannelCall, MessageID: "v3:3", From: "+14155550123", To: "+13129457420"},
		{MessageID: "m1", From: "+14155550123", To: "+13129457420", Text: "code 1", LineType: adapters.LineVoIP, Carrier: "BANDWIDTH.COM"},
		{MessageID: "m2", From: "+14155550123", To: "+13129457420", Text: "code 2", LineType: adapters.LineTollFree},
	} {
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
		m.Provider = "telnyx"
		if !reflect.DeepEqual(got, m) {
			t.Errorf("got  %+v\nwant %+v", got, m)
		}
	}
}

func FuzzParseTeXML(f *testing.F) {
	f.Add(texml)
	f.Add(texml + "&ShakenStirAttestation=A&ShakenStirValidated=true")
	f.Add("CallSid=1&From=2&To=3&ShakenStirAttestation=A&ShakenStirValidated=TRUE")
	pub, _, _ := keys()
	a, _ := New(Config{PublicKey: pub})
	f.Fuzz(func(t *testing.T, body string) {
		ins, err := a.Parse(&adapters.Request{Body: []byte(body)})
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatal(err)
		}
		for _, in := range ins {
			if in.From == "" || in.To == "" || in.MessageID == "" {
				t.Fatalf("accepted %+v", in)
			}
			if in.Channel == adapters.ChannelCall {
				v, _ := url.ParseQuery(body)
				if in.Attestation == "A" && (len(v["ShakenStirValidated"]) != 1 || len(v["ShakenStirAttestation"]) != 1) {
					t.Fatalf("attested A without one validated attestation: %q", body)
				}
			}
		}
	})
}
