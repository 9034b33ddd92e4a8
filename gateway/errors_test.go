package gateway

import (
	"errors"
	"fmt"
	"github.com/mogate/mogate/config"
	"log/slog"
	"strings"
	"testing"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// TestErrorKinds pins the one table from error kinds to answers: each kind
// is found through wrapping, a request-specific message keeps the kind, and
// an unknown error has no row (a 500).
func TestErrorKinds(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{matcher.ErrNotFound, 404, "not_found"},
		{matcher.ErrNotPending, 409, "not_pending"},
		{matcher.ErrIdempotencyReused, 409, "idempotency_key_reused"},
		{matcher.ErrInvalidCode, 422, "invalid_code"},
		{matcher.ErrCodeNotAllowed, 422, "code_not_allowed"},
		{matcher.ErrCodeInUse, 503, "no_free_code"},
		{pool.ErrNotInPool, 422, "to_not_in_pool"},
		{pool.ErrNoNumber, 422, "no_number"},
		{pool.ErrNoChannel, 422, "channel_unavailable"}, // an ErrNoNumber too: its own row wins
		{matcher.ErrInvalidRoutes, 422, "invalid_channels"},
		{pool.ErrBadNumber, 422, "invalid_number"},
		{adapters.Missing("X-Signature"), 401, "missing_signature"},
		{adapters.Unauthenticated("wrong"), 403, "invalid_signature"},
		{adapters.Malformed("json"), 400, "malformed_payload"},
		{errMalformedMessage, 400, "malformed_payload"},
		{errUnavailable, 503, "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.code+"/"+tc.err.Error(), func(t *testing.T) {
			ae := toAPIError(fmt.Errorf("context: %w", tc.err))
			if ae == nil || ae.Status != tc.status || ae.Code != tc.code || ae.Message == "" {
				t.Fatalf("answer = %+v, want %d %s", ae, tc.status, tc.code)
			}
			if tc.status == 503 && ae.RetryAfter == 0 {
				t.Fatal("503 without Retry-After")
			}
			d := toAPIError(withMessage(tc.err, "about this request"))
			if d.Status != tc.status || d.Code != tc.code || d.Message != "about this request" {
				t.Fatalf("with a message = %+v", d)
			}
		})
	}
	if ae := toAPIError(errors.New("disk on fire")); ae != nil {
		t.Fatalf("unknown error answered as %+v, want none (500)", ae)
	}
	// A signature failure's reason never reaches the caller.
	if ae := toAPIError(adapters.Unauthenticated("hmac mismatch for key abc")); strings.Contains(ae.Message, "abc") {
		t.Fatalf("reason echoed: %q", ae.Message)
	}
}

func TestStoreErr(t *testing.T) {
	logs := &syncBuffer{}
	s := &Server{log: slog.New(slog.NewJSONHandler(logs, nil))}
	if err := s.storeErr("cancel", matcher.ErrNotPending); !errors.Is(err, matcher.ErrNotPending) || logs.String() != "" {
		t.Fatalf("a known kind = %v, logged %q", err, logs)
	}
	err := s.storeErr("create", errors.New("wal: write: no space left on device"))
	if ae := toAPIError(err); ae == nil || ae.Status != 503 || ae.RetryAfter == 0 {
		t.Fatalf("a storage failure = %+v", ae)
	}
	if !strings.Contains(logs.String(), "storage failure") || !strings.Contains(logs.String(), "no space left") {
		t.Fatalf("storage failure not logged: %s", logs)
	}
}

// TestMessageWithoutReceivingNumberIs400: an Android phone entry with two
// numbers sends a message that names neither. It used to be a 503 (the
// provider retried forever) logged as a storage failure; it is a 400
// malformed_payload, logged as malformed, and nothing of it is kept. (A
// config file with such an entry is refused at start; a configuration
// built in code reaches the gateway unchecked, so the gateway holds too.)
func TestMessageWithoutReceivingNumberIs400(t *testing.T) {
	y := strings.Replace(testYAML, "numbers:\n", "  - {name: phone, type: smsgate, signing_key: phone-SECRETVALUE-7}\nnumbers:\n"+
		"  - {number: \"+14155550199\", provider: phone}\n", 1)
	h := newHarnessWith(t, y, func(cfg *config.Config) {
		cfg.Numbers = append(cfg.Numbers, config.Number{Number: "+14155550198", Provider: "phone", Weight: 1})
	})
	v := h.mustCreate(`{"number": "+16505551212", "to": "+14155550199"}`)
	msg := adapters.Inbound{MessageID: "sms-1", From: "+16505551212", Text: v["code"].(string)}
	w := h.send(h.signed("phone", msg))
	if w.Code != 400 || !strings.Contains(w.Body.String(), `"code":"malformed_payload"`) || w.Header().Get("Retry-After") != "" {
		t.Fatalf("no receiving number = %d %s", w.Code, w.Body)
	}
	logs := h.logs.String()
	if strings.Contains(logs, "storage failure") || !strings.Contains(logs, "webhook malformed") {
		t.Fatalf("logged as:\n%s", logs)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
		t.Fatalf("session touched: %v", got)
	}
	if !strings.Contains(h.do("GET", "/metrics", "", nil, nil).Body.String(), `mogate_webhooks_total{provider="phone",result="malformed"} 1`) {
		t.Error("not counted as malformed")
	}
	// Nothing was remembered: the same message id, now naming its number, verifies.
	msg.To = "+14155550199"
	if w := h.send(h.signed("phone", msg)); w.Code != 200 {
		t.Fatalf("with the receiving number = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("after the complete message: %v", got)
	}
}

// TestErrorAnswersKept: the answers the API gave before the error table,
// through every handler that uses it.
func TestErrorAnswersKept(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	id := v["id"].(string)
	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"get unknown", "GET", "/v1/verifications/nope", "", 404, `"code":"not_found"`},
		{"cancel unknown", "POST", "/v1/verifications/nope/cancel", "", 404, `"code":"not_found"`},
		{"to not E.164", "POST", "/v1/verifications", `{"number": "+14155550124", "to": "4155550100"}`, 422, `"code":"to_not_in_pool"`},
		{"cancel", "POST", "/v1/verifications/" + id + "/cancel", "", 200, `"status":"cancelled"`},
		{"cancel again", "POST", "/v1/verifications/" + id + "/cancel", "", 409, `"code":"not_pending"`},
		{"contiguity unknown", "GET", "/otp/reverse/verify/nope", "", 404, `"status":404`},
		{"contiguity cancel again", "POST", "/otp/reverse/cancel/" + id, "", 400, `"status":400`},
		{"contiguity bad number", "POST", "/otp/reverse/initiate", `{"number": "12"}`, 400, `"status":400`},
		{"page unknown", "GET", "/v/pt_nope/events", "", 404, `"code":"not_found"`},
	}
	for _, tc := range cases {
		w := h.do(tc.method, tc.path, shopKey, []byte(tc.body), nil)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s = %d %s, want %d %s", tc.name, w.Code, w.Body, tc.status, tc.want)
		}
	}
	// Without any "*" number, a country nobody serves has no number.
	y := strings.Replace(testYAML, `countries: ["*"]`, `countries: [FR]`, 1)
	if code, out := newHarness(t, y).create(shopKey, `{"number": "+819012345678"}`, nil); code != 422 || !strings.Contains(fmt.Sprint(out), "no_number") {
		t.Errorf("no number = %d %v", code, out)
	}
}
