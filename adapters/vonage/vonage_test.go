package vonage

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/adapterstest"
)

// Vectors from vonage-node-sdk packages/sms/__tests__/__dataSets__/signature.ts.
var sdkParams = map[string]string{
	"message-timestamp": "2013-11-21 15:27:30", "messageId": "020000001B0FE827", "msisdn": "14843472194",
	"text": "Test again", "timestamp": "1385047698", "to": "13239877404", "type": "text",
}

const sdkSecret = "my_secret_key_for_testing"

var sdkVectors = map[string]string{
	"md5hash": "d2e7b1dc968737c5998ad624e02f90b7",
	"md5":     "DDEBD46008C2D4E93CCE578A332A52D5",
	"sha1":    "27D0D05C2876C7CB1720DBCDBA4D492E1E55C09A",
	"sha256":  "DDB8397C2B90AAC7F3882D306475C9A5058C92322EEF43C92B298B6E0FC0D330",
	"sha512":  "E0D3C650F8C9D1A5C174D10DDDBFB003E561F59B265616208B0487C5D819481CD3C311D59CF6165ECD1139622D5BA3A256C0D763AC4A9AD9144B5A426B94FE82",
}

var sdkTime = time.Unix(1385047698, 0)

func adapter(t *testing.T, method string, now time.Time) *Adapter {
	t.Helper()
	a, err := New(Config{Name: "vonage", SignatureSecret: sdkSecret, SignatureMethod: method, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func withSig(p map[string]string, sig string) map[string]string {
	q := map[string]string{"sig": sig}
	for k, v := range p {
		q[k] = v
	}
	return q
}

func formReq(p map[string]string) *adapters.Request {
	v := url.Values{}
	for k, s := range p {
		v.Set(k, s)
	}
	u, _ := url.Parse("https://sms.example.com/webhooks/vonage")
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=UTF-8"}}
	return &adapters.Request{Method: "POST", URL: u, Header: h, Body: []byte(v.Encode())}
}

func queryReq(p map[string]string) *adapters.Request {
	v := url.Values{}
	for k, s := range p {
		v.Set(k, s)
	}
	u, _ := url.Parse("https://sms.example.com/webhooks/vonage?" + v.Encode())
	return &adapters.Request{Method: "GET", URL: u, Header: http.Header{}}
}

func jsonReq(p map[string]string) *adapters.Request {
	b, _ := json.Marshal(p)
	u, _ := url.Parse("https://sms.example.com/webhooks/vonage")
	return &adapters.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
}

func TestSDKVectorsEveryMethodAndEncoding(t *testing.T) {
	for method, sig := range sdkVectors {
		for _, enc := range []struct {
			name string
			mk   func(map[string]string) *adapters.Request
		}{{"form", formReq}, {"query", queryReq}, {"json", jsonReq}} {
			for _, s := range []string{sig, strings.ToLower(sig), strings.ToUpper(sig)} {
				t.Run(method+"/"+enc.name, func(t *testing.T) {
					a := adapter(t, method, sdkTime.Add(2*time.Minute))
					if err := a.Verify(enc.mk(withSig(sdkParams, s))); err != nil {
						t.Fatalf("Verify: %v", err)
					}
				})
			}
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	good := withSig(sdkParams, sdkVectors["sha256"])
	tampered := withSig(sdkParams, sdkVectors["sha256"])
	tampered["text"] = "Test again 482913"
	cases := []struct {
		name    string
		method  string
		now     time.Time
		params  map[string]string
		missing bool
	}{
		{"tampered text", "sha256", sdkTime, tampered, false},
		{"other method's signature", "sha512", sdkTime, good, false},
		{"stale by 6 minutes", "sha256", sdkTime.Add(6 * time.Minute), good, false},
		{"from the future by 6 minutes", "sha256", sdkTime.Add(-6 * time.Minute), good, false},
		{"not hex", "sha256", sdkTime, withSig(sdkParams, "zz"), false},
		{"no sig", "sha256", sdkTime, sdkParams, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := adapter(t, tc.method, tc.now).Verify(formReq(tc.params))
			if !errors.Is(err, adapters.ErrUnauthenticated) {
				t.Fatalf("Verify = %v, want ErrUnauthenticated", err)
			}
			if tc.missing != errors.Is(err, adapters.ErrMissingSignature) {
				t.Fatalf("missing = %v for %v", !tc.missing, err)
			}
		})
	}
}

func TestSignedWithoutTimestampRejected(t *testing.T) {
	p := map[string]string{"msisdn": "447700900001", "to": "447700900123", "messageId": "1", "text": "x"}
	p["sig"] = strings.ToUpper(string(hexOf(Signature("sha1", "s", p))))
	a, _ := New(Config{SignatureSecret: "s", SignatureMethod: "sha1"})
	if err := a.Verify(formReq(p)); !errors.Is(err, adapters.ErrUnauthenticated) {
		t.Fatalf("Verify = %v", err)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestValuesWithAmpersandAndEquals(t *testing.T) {
	// & and = in values become _ before signing: a value "a=b&c" signs as "a_b_c".
	p := map[string]string{"text": "a=b&c", "timestamp": "1"}
	q := map[string]string{"text": "a_b_c", "timestamp": "1"}
	if string(Signature("sha256", "k", p)) != string(Signature("sha256", "k", q)) {
		t.Fatal("& and = not replaced")
	}
}

func TestParse(t *testing.T) {
	a := adapter(t, "md5hash", sdkTime)
	ins, err := a.Parse(formReq(withSig(sdkParams, sdkVectors["md5hash"])))
	if err != nil {
		t.Fatal(err)
	}
	in := ins[0]
	if in.From != "+14843472194" || in.To != "+13239877404" || in.MessageID != "020000001B0FE827" || in.Text != "Test again" || in.Parts != 0 {
		t.Errorf("Parse = %+v", in)
	}
	if !in.ReceivedAt.Equal(time.Date(2013, 11, 21, 15, 27, 30, 0, time.UTC)) {
		t.Errorf("ReceivedAt = %v", in.ReceivedAt)
	}

	// the provider's public docs concatenated part, as JSON with numbers as strings.
	part := `{"msisdn":"447700900001","to":"447700900000","messageId":"0A0000001234567B","text":"first 153 chars ...","type":"text","keyword":"YOUR","message-timestamp":"2024-05-01 10:00:00","timestamp":"1714557600","concat":"true","concat-ref":"108","concat-total":"2","concat-part":"1","api-key":"a1b2c3d"}`
	u, _ := url.Parse("https://x.example/w")
	ins, err = a.Parse(&adapters.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(part)})
	if err != nil {
		t.Fatal(err)
	}
	if in := ins[0]; in.Parts != 2 || in.Part != 1 || in.PartsRef != "108" || in.From != "+447700900001" || in.Account != "a1b2c3d" {
		t.Errorf("concat part = %+v", in)
	}

	bad := []map[string]string{
		{"to": "1", "messageId": "1"},
		{"msisdn": "1", "messageId": "1"},
		{"msisdn": "1", "to": "2"},
		{"msisdn": "1", "to": "2", "messageId": "3", "concat-ref": "9", "concat-total": "2", "concat-part": "3"},
		{"msisdn": "1", "to": "2", "messageId": "3", "concat-ref": "9", "concat-total": "x", "concat-part": "1"},
	}
	for _, p := range bad {
		if _, err := a.Parse(formReq(p)); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%v) = %v, want ErrMalformed", p, err)
		}
	}
	u2, _ := url.Parse("https://x.example/w")
	for _, body := range []string{`[1]`, `{"msisdn": {"a": 1}}`, `{`} {
		if _, err := a.Parse(&adapters.Request{Method: "POST", URL: u2, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}); !errors.Is(err, adapters.ErrMalformed) {
			t.Errorf("Parse(%s) = %v", body, err)
		}
	}
}

func TestSignRoundTripEveryMethod(t *testing.T) {
	now := time.Now()
	u, _ := url.Parse("http://127.0.0.1:8080/webhooks/vonage")
	for method := range sdkVectors {
		a, _ := New(Config{Name: "v", SignatureSecret: "sec", SignatureMethod: method})
		r, err := a.Sign(adapters.Inbound{From: "+447700900001", To: "+447700900123", Text: "Código 482913 a=b&c", Parts: 2, Part: 2, PartsRef: "ab"}, u, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(r); err != nil {
			t.Fatalf("%s: Verify(Sign) = %v", method, err)
		}
		ins, err := a.Parse(r)
		if err != nil || ins[0].Text != "Código 482913 a=b&c" || ins[0].Part != 2 || ins[0].From != "+447700900001" {
			t.Fatalf("%s: Parse(Sign) = %+v %v", method, ins, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range adapterstest.FixtureBodies("vonage") {
		f.Add(b, "application/x-www-form-urlencoded")
	}
	f.Add("msisdn=14843472194&to=13239877404&messageId=1&text=hi", "application/x-www-form-urlencoded")
	f.Add(`{"msisdn":"1","to":"2","messageId":"3","concat-ref":"1","concat-total":"2","concat-part":"1"}`, "application/json")
	a, _ := New(Config{SignatureSecret: "s"})
	f.Fuzz(func(t *testing.T, body, ct string) {
		u, _ := url.Parse("https://x.example/w")
		r := &adapters.Request{Method: "POST", URL: u, Header: http.Header{"Content-Type": {ct}}, Body: []byte(body)}
		ins, err := a.Parse(r)
		if err != nil && !errors.Is(err, adapters.ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		if err == nil && (ins[0].From == "" || ins[0].To == "" || (ins[0].PartsRef != "" && (ins[0].Part < 1 || ins[0].Part > ins[0].Parts))) {
			t.Fatalf("accepted %+v", ins[0])
		}
		_ = a.Verify(r)
	})
}
