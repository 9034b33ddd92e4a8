package client

import (
	"errors"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/gateway/outbox"
)

const secret = "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA=="

// TestVerifyEvent checks both schemes against mogate's own signers (the
// outbox's StandardSignature and ContiguitySignature), and every way an
// event is refused.
func TestVerifyEvent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"verification.cancelled","timestamp":"2027-01-15T08:00:00Z","data":{"id":"ver_1","status":"cancelled","reason":"cancelled_by_api"}}`)
	otp := []byte(`{"id":"evt_9","type":"otp.reverse.verified","timestamp":1800000000,"api_version":"v2025.12.10","data":{"otp_id":"r_otp_1","number":"+14155550123","status":"verified"}}`)
	standard := func(id string, at time.Time, b []byte) http.Header {
		ts := strconv.FormatInt(at.Unix(), 10)
		sig, err := outbox.StandardSignature(secret, id, ts, b)
		if err != nil {
			t.Fatal(err)
		}
		return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {"v1," + sig}}
	}
	contiguity := func(at time.Time, b []byte) http.Header {
		return http.Header{"Contiguity-Signature": {outbox.ContiguitySignature(secret, at, b)}}
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	good := standard("evt_1", now, body)
	other, _ := outbox.StandardSignature("whsec_b3RoZXItc2VjcmV0LXZhbHVlLTEyMzQ=", "evt_1", good.Get("webhook-timestamp"), body)
	cases := []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		want   error
	}{
		{"standard", secret, good, body, nil},
		{"standard, signed 4m59s ago", secret, standard("evt_1", now.Add(-299*time.Second), body), body, nil},
		{"standard, signed 4m59s ahead", secret, standard("evt_1", now.Add(299*time.Second), body), body, nil},
		{"several signatures, one of them ours", secret, with(good, "webhook-signature", "v1a,AAAA v1,"+other+" "+good.Get("webhook-signature")), body, nil},
		{"contiguity", secret, contiguity(now, otp), otp, nil},
		{"contiguity with a second v1 (rotation)", secret, with(contiguity(now, otp), "Contiguity-Signature", contiguity(now, otp).Get("Contiguity-Signature")+",v1=00ff"), otp, nil},

		{"no headers", secret, http.Header{}, body, ErrNoSignature},
		{"tampered body", secret, good, append([]byte(" "), body...), ErrBadSignature},
		{"another id", secret, with(good, "webhook-id", "evt_2"), body, ErrBadSignature},
		{"another timestamp", secret, with(good, "webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, ErrBadSignature},
		{"another secret's signature only", secret, with(good, "webhook-signature", "v1,"+other), body, ErrBadSignature},
		{"v1a only", secret, with(good, "webhook-signature", "v1a,"+good.Get("webhook-signature")[3:]), body, ErrBadSignature},
		{"no webhook-id", secret, with(good, "webhook-id", ""), body, ErrBadSignature},
		{"timestamp not a number", secret, with(good, "webhook-timestamp", "soon"), body, ErrBadSignature},
		{"signed 5m01s ago", secret, standard("evt_1", now.Add(-301*time.Second), body), body, ErrStale},
		{"signed 5m01s ahead", secret, standard("evt_1", now.Add(301*time.Second), body), body, ErrStale},
		{"secret not base64", "whsec_%%%", good, body, ErrBadSecret},
		{"contiguity tampered", secret, contiguity(now, otp), append(otp, ' '), ErrBadSignature},
		{"contiguity, the secret decoded as Standard Webhooks would", "c2hvcC1TRUNSRVRWQUxVRS13aA==", contiguity(now, otp), otp, ErrBadSignature},
		{"contiguity stale", secret, contiguity(now.Add(-6*time.Minute), otp), otp, ErrStale},
		{"contiguity without t", secret, http.Header{"Contiguity-Signature": {"v1=00"}}, otp, ErrBadSignature},
		{"signed but not JSON", secret, standard("evt_1", now, []byte("hello")), []byte("hello"), ErrBadPayload},
		{"signed, known type, wrong shape", secret, standard("evt_1", now, []byte(`{"type":"message.unmatched","data":[]}`)), []byte(`{"type":"message.unmatched","data":[]}`), ErrBadPayload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := verifyEvent(tc.secret, tc.header, tc.body, now)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil {
				if ev.Type != "" || ev.Verification != nil || ev.OTP != nil {
					t.Errorf("a refused event came with data: %+v", ev)
				}
				return
			}
			switch ev.Type {
			case EventCancelled:
				if ev.ID != "evt_1" || ev.Verification == nil || ev.Verification.ID != "ver_1" || ev.Verification.Reason != "cancelled_by_api" {
					t.Errorf("event = %+v", ev)
				}
			case EventOTPReverseVerified:
				if ev.ID != "evt_9" || ev.OTP == nil || ev.OTP.OTPID != "r_otp_1" || !ev.Timestamp.Equal(now) {
					t.Errorf("event = %+v", ev)
				}
			default:
				t.Errorf("type %q", ev.Type)
			}
		})
	}
}

// TestVerifyEventUnknownType: a type this client does not know (a newer
// mogate) verifies, with its body and no typed data.
func TestVerifyEventUnknownType(t *testing.T) {
	now := time.Now()
	body := []byte(`{"type":"number.unhealthy","data":{"number":"+14155550100"}}`)
	sig, _ := outbox.StandardSignature(secret, "evt_3", strconv.FormatInt(now.Unix(), 10), body)
	h := http.Header{"Webhook-Id": {"evt_3"}, "Webhook-Timestamp": {strconv.FormatInt(now.Unix(), 10)}, "Webhook-Signature": {"v1," + sig}}
	ev, err := VerifyEvent(secret, h, body)
	if err != nil || ev.Type != "number.unhealthy" || string(ev.Body) != string(body) || ev.Verification != nil || ev.Unmatched != nil || ev.OTP != nil {
		t.Fatalf("%+v, %v", ev, err)
	}
}

// TestStandardLibraryOnly: apps import this package; it brings them no
// dependency (no gin, no store, no SDK), only the standard library.
func TestStandardLibraryOnly(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

// TestREADMEExample: the README's event handler is ExampleVerifyEvent's
// body, which go test compiles.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(ex), "func ExampleVerifyEvent() {\n")
	body, _, _ = strings.Cut(body, "\n}\n")
	var lines []string
	for _, l := range strings.Split(body, "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if want := "```go\n" + strings.Join(lines, "\n") + "\n```"; !ok || !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks ExampleVerifyEvent's body:\n%s", want)
	}
}
