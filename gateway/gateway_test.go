package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/memstore"
)

// Secrets of the test configuration: distinctive so that a leak is found.
const (
	shopKey      = "shop-key-SECRETVALUE-0001"
	otherKey     = "other-key-SECRETVALUE-0002"
	twilioToken  = "twilio-token-SECRETVALUE-3"
	vonageSecret = "vonage-secret-SECRETVALUE-4"
	plivoToken   = "plivo-token-SECRETVALUE-5"
	vmSecret     = "vm-secret-SECRETVALUE-6"
	publicURL    = "https://sms.example.com"
)

var testYAML = `
public_url: ` + publicURL + `
api_keys:
  - {name: shop, key: ` + shopKey + `, webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}
  - {name: other, key: ` + otherKey + `}
providers:
  - {name: twilio, type: twilio, auth_token: ` + twilioToken + `}
  - {name: vonage, type: vonage, signature_secret: ` + vonageSecret + `, signature_method: sha256}
  - {name: vonage-messages, type: vonage-messages, signature_secret: ` + vmSecret + `}
  - {name: plivo, type: plivo, auth_id: MA123, auth_token: ` + plivoToken + `}
numbers:
  - {number: "+14155550100", provider: twilio}
  - {number: "+447700900123", provider: vonage, countries: [GB, IE]}
  - {number: "+447700900124", provider: vonage-messages, countries: [GB]}
  - {number: "+33757000000", provider: plivo, countries: ["*"]}
limits:
  creates_per_key_per_second: 1000
  creates_per_number_per_hour: 1000
  unmatched_per_sender_per_hour: 5
`

var secrets = []string{shopKey, otherKey, twilioToken, vonageSecret, plivoToken, vmSecret, "c2hvcC1TRUNSRVRWQUxVRS13aA", "SECRETVALUE"}

type harness struct {
	t    *testing.T
	s    *Server
	m    *memstore.Store // the memory store behind s (nil on Redis)
	h    http.Handler
	logs *syncBuffer
	now  time.Time
	mu   sync.Mutex
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	return newHarnessWith(t, yaml, nil)
}

// newHarnessWith lets edit change the parsed configuration, as code that
// builds one without the file's checks may.
func newHarnessWith(t *testing.T, yaml string, edit func(*config.Config)) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	h := &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, st, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: h.clock}, true)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	h.s, h.h, h.m = s, s.Handler(), st.Memory
	t.Cleanup(h.checkNoLeak)
	return h
}

func (h *harness) clock() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now }
func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// all records every response body, for the leak check.
var all = &syncBuffer{}

func (h *harness) checkNoLeak() {
	rec := h.do("GET", "/metrics", "", nil, nil)
	for _, where := range []struct{ name, text string }{{"logs", h.logs.String()}, {"responses", all.String()}, {"metrics", rec.Body.String()}} {
		for _, s := range secrets {
			if strings.Contains(where.text, s) {
				h.t.Errorf("secret %q leaked into %s", s, where.name)
			}
		}
	}
}

func (h *harness) do(method, path, key string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range hdr {
		r.Header[k] = v
	}
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	all.Write(w.Body.Bytes())
	for k, v := range w.Header() {
		fmt.Fprintln(all, k, v)
	}
	return w
}

func (h *harness) create(key string, body string, hdr http.Header) (int, map[string]any) {
	h.t.Helper()
	w := h.do("POST", "/v1/verifications", key, []byte(body), hdr)
	var out map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func (h *harness) mustCreate(body string) map[string]any {
	h.t.Helper()
	code, out := h.create(shopKey, body, nil)
	if code != 201 {
		h.t.Fatalf("create = %d %v", code, out)
	}
	return out
}

func (h *harness) get(id string) map[string]any {
	h.t.Helper()
	w := h.do("GET", "/v1/verifications/"+id, shopKey, nil, nil)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || w.Code != 200 {
		h.t.Fatalf("get = %d %s", w.Code, w.Body)
	}
	return out
}

// signed builds a correctly signed webhook for provider, as the provider would send it.
func (h *harness) signed(provider string, m adapters.Inbound) *adapters.Request {
	h.t.Helper()
	u, _ := url.Parse(publicURL + "/webhooks/" + provider)
	r, err := h.s.adapters[provider].(adapters.Signer).Sign(m, u, h.clock())
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) send(r *adapters.Request) *httptest.ResponseRecorder {
	h.t.Helper()
	path := r.URL.Path
	if r.URL.RawQuery != "" {
		path += "?" + r.URL.RawQuery
	}
	return h.do(r.Method, path, "", r.Body, r.Header)
}

func TestEndToEndEveryProvider(t *testing.T) {
	cases := []struct{ provider, sender, to, ct, ack string }{
		{"twilio", "+14155550123", "+14155550100", "text/xml", `<?xml version="1.0" encoding="UTF-8"?><Response/>`},
		{"vonage", "+447400123456", "+447700900123", "", ""},
		{"vonage-messages", "+447400123457", "+447700900124", "", ""},
		{"plivo", "+4915112345678", "+33757000000", "text/xml", "<Response></Response>"},
	}
	for _, tc := range cases {
		t.Run(tc.provider, func(t *testing.T) {
			h := newHarness(t, testYAML)
			v := h.mustCreate(`{"number": "` + tc.sender + `", "to": "` + tc.to + `"}`)
			if v["status"] != "pending" || v["to"] != tc.to {
				t.Fatalf("created %v", v)
			}
			w := h.send(h.signed(tc.provider, adapters.Inbound{From: tc.sender, To: tc.to, Text: "My code is " + v["code"].(string)}))
			if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), tc.ct) || w.Body.String() != tc.ack {
				t.Fatalf("webhook = %d %q %q", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			got := h.get(v["id"].(string))
			if got["status"] != "verified" || got["verified_number"] != tc.sender || got["provider"] != tc.provider || got["verified_at"] == nil {
				t.Fatalf("after webhook: %v", got)
			}
		})
	}
}

func TestBadSignaturesRecordNothing(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	good := h.signed("twilio", adapters.Inbound{MessageID: "SMbad", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)})

	missing := *good
	missing.Header = good.Header.Clone()
	missing.Header.Del("X-Twilio-Signature")
	if w := h.send(&missing); w.Code != 401 || !strings.Contains(w.Body.String(), "missing_signature") {
		t.Fatalf("missing signature = %d %s", w.Code, w.Body)
	}
	wrong := *good
	wrong.Header = good.Header.Clone()
	wrong.Header.Set("X-Twilio-Signature", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if w := h.send(&wrong); w.Code != 403 {
		t.Fatalf("wrong signature = %d", w.Code)
	}
	tampered := *good
	tampered.Body = bytes.Replace(good.Body, []byte("%2B14155550123"), []byte("%2B14155550999"), 1)
	if w := h.send(&tampered); w.Code != 403 {
		t.Fatalf("tampered = %d", w.Code)
	}
	// Signed for another host: X-Forwarded-Host must not make it pass.
	other, _ := url.Parse("https://evil.example.com/webhooks/twilio")
	forged, _ := h.s.adapters["twilio"].(adapters.Signer).Sign(adapters.Inbound{MessageID: "SMbad", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}, other, time.Now())
	forged.URL, _ = url.Parse(publicURL + "/webhooks/twilio")
	forged.Header.Set("X-Forwarded-Host", "evil.example.com")
	forged.Header.Set("X-Forwarded-Proto", "https")
	if w := h.send(forged); w.Code != 403 {
		t.Fatalf("forwarded-host forgery = %d", w.Code)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" || got["attempts"] != 0.0 {
		t.Fatalf("session touched: %v", got)
	}
	// The refused message id was not remembered: the genuine delivery still works.
	if w := h.send(good); w.Code != 200 {
		t.Fatalf("genuine = %d", w.Code)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("genuine delivery did not verify: %v", got)
	}
}

func TestStaleVonageTimestampRejected(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+447400123456"}`)
	r := h.signed("vonage", adapters.Inbound{From: "+447400123456", To: "+447700900123", Text: v["code"].(string)})
	h.advance(6 * time.Minute)
	if w := h.send(r); w.Code != 403 {
		t.Fatalf("stale = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" {
		t.Fatalf("session touched: %v", got)
	}
}

func TestWebhookBadInput(t *testing.T) {
	h := newHarness(t, testYAML)
	big := h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: strings.Repeat("x", 70<<10)})
	if w := h.send(big); w.Code != 413 {
		t.Fatalf("oversized = %d", w.Code)
	}
	if w := h.do("POST", "/webhooks/nope", "", []byte("a=b"), nil); w.Code != 404 || !strings.Contains(w.Body.String(), "unknown_provider") {
		t.Fatalf("unknown provider = %d %s", w.Code, w.Body)
	}
	// Signed but without a sender.
	form := url.Values{"MessageSid": {"SM1"}, "To": {"+14155550100"}, "Body": {"123456"}}
	sig := twilioSignature(publicURL+"/webhooks/twilio", form)
	w := h.do("POST", "/webhooks/twilio", "", []byte(form.Encode()), http.Header{"X-Twilio-Signature": {sig}, "Content-Type": {"application/x-www-form-urlencoded"}})
	if w.Code != 400 || !strings.Contains(w.Body.String(), "malformed_payload") {
		t.Fatalf("no sender = %d %s", w.Code, w.Body)
	}
}

func twilioSignature(u string, form url.Values) string { return twilioSig(twilioToken, u, form) }

func TestRedeliveryIsIdempotent(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	wrongCode := h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: "000000"})
	for i := range 3 {
		if w := h.send(wrongCode); w.Code != 200 {
			t.Fatalf("delivery %d = %d", i, w.Code)
		}
	}
	if got := h.get(v["id"].(string)); got["attempts"] != 1.0 {
		t.Fatalf("attempts after 3 deliveries of one message: %v", got["attempts"])
	}
	right := h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)})
	h.send(right)
	first := h.get(v["id"].(string))
	if w := h.send(right); w.Code != 200 || w.Body.String() != `<?xml version="1.0" encoding="UTF-8"?><Response/>` {
		t.Fatalf("redelivery of verifying message = %d %s", w.Code, w.Body)
	}
	if again := h.get(v["id"].(string)); again["verified_at"] != first["verified_at"] || again["message_id"] != first["message_id"] {
		t.Fatalf("redelivery changed the session: %v -> %v", first, again)
	}
	if !strings.Contains(h.do("GET", "/metrics", "", nil, nil).Body.String(), `mogate_messages_total{channel="sms",outcome="duplicate",provider="twilio"} 3`) {
		t.Error("duplicates not counted")
	}
}

func TestAPIKeys(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		v := h.mustCreate(`{"number": "+14155550123"}`)
		id := v["id"].(string)
		for _, key := range []string{"", "wrong-key-xxxxxxxxxxxx"} {
			w := h.do("GET", "/v1/verifications/"+id, key, nil, nil)
			if w.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("key %q = %d", key, w.Code)
			}
		}
		if w := h.do("GET", "/v1/verifications/"+id, otherKey, nil, nil); w.Code != 404 {
			t.Fatalf("other key's verification = %d", w.Code)
		}
		if w := h.do("POST", "/v1/verifications/"+id+"/cancel", otherKey, nil, nil); w.Code != 404 {
			t.Fatalf("other key cancels = %d", w.Code)
		}
		if w := h.do("GET", "/otp/reverse/verify/"+id, otherKey, nil, nil); w.Code != 404 {
			t.Fatalf("other key via contiguity = %d", w.Code)
		}
		if got := h.get(id); got["status"] != "pending" {
			t.Fatal("other key changed it")
		}
		// key_sha256 works like key.
		y := strings.Replace(testYAML, "{name: other, key: "+otherKey+"}", "{name: other, key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}", 1)
		h2 := st.harness(t, y)
		if code, _ := h2.create("test", `{"number": "+14155550123"}`, nil); code != 201 {
			t.Fatalf("key_sha256 (sha256 of \"test\") = %d", code)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	h := newHarness(t, testYAML)
	cases := []struct {
		body string
		code int
		err  string
	}{
		{`{"number": "12345"}`, 422, "invalid_number"},
		{`{"number": "+1415"}`, 422, "invalid_number"},
		{`{"number": "not a number"}`, 422, "invalid_number"},
		{`{"number": "+14155550123", "code": "12345678901234567"}`, 422, "invalid_code"},
		{`{"number": "+14155550123", "code": "ab:cd"}`, 422, "invalid_code"},
		{`{"code": "12"}`, 422, "code_not_allowed"},
		{`{"code": "48291357"}`, 422, "code_not_allowed"},
		{`{"number": "+14155550123", "to": "+19998887777"}`, 422, "to_not_in_pool"},
		{`{"number": "+14155550123", "ttl_seconds": 0}`, 422, "invalid_ttl"},
		{`{"number": "+14155550123", "ttl_seconds": 86401}`, 422, "invalid_ttl"},
		{`{"number": "+14155550123", "callback_url": "ftp://x"}`, 422, "invalid_url"},
		{`{"number": "+14155550123", "metadata": [1]}`, 422, "invalid_metadata"},
		{`{"number": "+14155550123", "nmuber": 1}`, 400, "invalid_json"},
		{`{"number": 14155550123}`, 400, "invalid_json"},
		{`not json`, 400, "invalid_json"},
		{`{"number": "+14155550123"} {}`, 400, "invalid_json"},
		{`{"number": "+14155550123", "code": "1", "factor": "2"}`, 422, "invalid_code"},
	}
	for _, tc := range cases {
		code, out := h.create(shopKey, tc.body, nil)
		if code != tc.code || !strings.Contains(fmt.Sprint(out["error"]), tc.err) {
			t.Errorf("%s = %d %v, want %d %s", tc.body, code, out, tc.code, tc.err)
		}
	}
	big := `{"number": "+14155550123", "metadata": {"x": "` + strings.Repeat("a", 70<<10) + `"}}`
	if code, _ := h.create(shopKey, big, nil); code != 413 {
		t.Errorf("oversized create = %d", code)
	}
	if h.m.Len() != 0 {
		t.Fatalf("invalid requests created %d sessions", h.m.Len())
	}
}

func TestCreateResponse(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		v := h.mustCreate(`{"number": "+1 (415) 555-0123", "factor": "7391", "language": "es", "ttl_seconds": 120, "callback_url": "https://app.example/cb", "metadata": {"user": 42}}`)
		if v["number"] != "+14155550123" || v["code"] != "7391" || v["to"] != "+14155550100" || v["language"] != "es" {
			t.Fatalf("create = %v", v)
		}
		ui := v["ui"].(map[string]any)
		if ui["sms_uri"] != "sms:+14155550100?body=7391" || !strings.Contains(ui["text"].(string), "Envía 7391") || !strings.Contains(ui["text"].(string), "+1 415-555-0100") {
			t.Fatalf("ui = %v", ui)
		}
		if !strings.HasPrefix(ui["page_url"].(string), publicURL+"/v/pt_") || ui["qr_png_url"] != publicURL+"/v1/verifications/"+v["id"].(string)+"/qr.png" {
			t.Fatalf("ui urls = %v", ui)
		}
		if m := v["metadata"].(map[string]any); m["user"] != 42.0 {
			t.Fatalf("metadata = %v", v["metadata"])
		}
		exp, _ := time.Parse(time.RFC3339, v["expires_at"].(string))
		created, _ := time.Parse(time.RFC3339, v["created_at"].(string))
		if exp.Sub(created) != 120*time.Second {
			t.Fatalf("ttl = %v", exp.Sub(created))
		}
		// Capture mode: no number, generated code, learnt sender.
		c := h.mustCreate(`{"country": "FR"}`)
		if c["number"] != nil || c["to"] != "+33757000000" || len(c["code"].(string)) != 6 {
			t.Fatalf("capture = %v", c)
		}
		h.send(h.signed("plivo", adapters.Inbound{From: "+33612345678", To: "+33757000000", Text: c["code"].(string)}))
		if got := h.get(c["id"].(string)); got["status"] != "verified" || got["verified_number"] != "+33612345678" {
			t.Fatalf("capture after sms = %v", got)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t, testYAML)
	hdr := http.Header{"Idempotency-Key": {"order-17"}}
	c1, a := h.create(shopKey, `{"number": "+14155550123"}`, hdr)
	c2, b := h.create(shopKey, `{"number": "+14155550123"}`, hdr)
	if c1 != 201 || c2 != 201 || a["id"] != b["id"] || a["code"] != b["code"] {
		t.Fatalf("retry = %d %v / %d %v", c1, a, c2, b)
	}
	if c3, out := h.create(shopKey, `{"number": "+14155550124"}`, hdr); c3 != 409 || !strings.Contains(fmt.Sprint(out), "idempotency_key_reused") {
		t.Fatalf("changed body = %d %v", c3, out)
	}
	if h.m.Len() != 1 {
		t.Fatalf("%d sessions", h.m.Len())
	}
}

func TestRateLimits(t *testing.T) {
	y := strings.Replace(testYAML, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 2", 1)
	y = strings.Replace(y, "creates_per_key_per_second: 1000", "creates_per_key_per_second: 3", 1)
	h := newHarness(t, y)
	for i := range 2 {
		if code, _ := h.create(shopKey, `{"number": "+14155550123"}`, nil); code != 201 {
			t.Fatalf("create %d = %d", i, code)
		}
	}
	w := h.do("POST", "/v1/verifications", shopKey, []byte(`{"number": "+14155550123"}`), nil)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("3rd create for one number = %d %v", w.Code, w.Header())
	}
	// The per-key limit, on its own: 3 per second.
	h2 := newHarness(t, strings.Replace(testYAML, "creates_per_key_per_second: 1000", "creates_per_key_per_second: 3", 1))
	var codes []int
	for i := range 4 {
		c, _ := h2.create(shopKey, fmt.Sprintf(`{"number": "+1415555020%d"}`, i), nil)
		codes = append(codes, c)
	}
	if fmt.Sprint(codes) != "[201 201 201 429]" {
		t.Fatalf("per-key codes = %v", codes)
	}
	// Another key has its own budget.
	if c, _ := h2.create(otherKey, `{"number": "+14155550299"}`, nil); c != 201 {
		t.Fatalf("other key = %d", c)
	}
}

func TestUnmatchedLimitBlocksCaptureGuessing(t *testing.T) {
	h := newHarness(t, testYAML)
	c := h.mustCreate(`{"country": "FR"}`)
	guesser := "+33698765432"
	for i := range 5 {
		h.send(h.signed("plivo", adapters.Inbound{From: guesser, To: "+33757000000", Text: fmt.Sprintf("%06d", i)}))
	}
	// Over the limit: even the right code no longer matches for this sender.
	h.send(h.signed("plivo", adapters.Inbound{From: guesser, To: "+33757000000", Text: c["code"].(string)}))
	if got := h.get(c["id"].(string)); got["status"] != "pending" {
		t.Fatalf("guesser verified after the limit: %v", got)
	}
	h.send(h.signed("plivo", adapters.Inbound{From: "+33611111111", To: "+33757000000", Text: c["code"].(string)}))
	if got := h.get(c["id"].(string)); got["status"] != "verified" {
		t.Fatalf("honest sender blocked: %v", got)
	}
}

// waitEntered is a store that calls entered as a Wait begins.
type waitEntered struct {
	matcher.Store
	entered func()
}

func (w waitEntered) Wait(ctx context.Context, id string) (matcher.Session, error) {
	w.entered()
	return w.Store.Wait(ctx, id)
}

func TestCancelAndWait(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		v := h.mustCreate(`{"number": "+14155550123"}`)
		id := v["id"].(string)
		waiting := make(chan struct{})
		h.s.store = waitEntered{h.s.store, sync.OnceFunc(func() { close(waiting) })}
		done := make(chan *httptest.ResponseRecorder)
		go func() { done <- h.do("GET", "/v1/verifications/"+id+"?wait=30s", shopKey, nil, nil) }()
		<-waiting
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
		select {
		case w := <-done:
			if !strings.Contains(w.Body.String(), `"status":"verified"`) {
				t.Fatalf("long-poll = %s", w.Body)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("long-poll not woken")
		}
		if w := h.do("POST", "/v1/verifications/"+id+"/cancel", shopKey, nil, nil); w.Code != 409 {
			t.Fatalf("cancel verified = %d", w.Code)
		}
		v2 := h.mustCreate(`{"number": "+14155550124"}`)
		w := h.do("POST", "/v1/verifications/"+v2["id"].(string)+"/cancel", shopKey, nil, nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), `"status":"cancelled"`) {
			t.Fatalf("cancel = %d %s", w.Code, w.Body)
		}
		if w := h.do("GET", "/v1/verifications/"+v2["id"].(string)+"?wait=30s", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("wait on a final session answers at once: %d", w.Code)
		}
		v3 := h.mustCreate(`{"number": "+14155550125"}`)
		if w := h.do("GET", "/v1/verifications/"+v3["id"].(string)+"?wait=forever", shopKey, nil, nil); w.Code != 400 {
			t.Fatalf("bad wait = %d", w.Code)
		}
	})
}

func TestContiguityCompat(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "factor": "1234", "language": "fr", "success_url": "https://app.example/ok"}`), nil)
		var env struct {
			ID, Object, APIVersion string
			Timestamp              int64
			Data                   map[string]any
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || w.Code != 200 {
			t.Fatalf("initiate = %d %s", w.Code, w.Body)
		}
		if env.Object != "response" || !strings.HasPrefix(env.ID, "req_") || env.Timestamp < time.Now().Add(-time.Minute).UnixMilli() {
			t.Fatalf("envelope = %+v", env)
		}
		d := env.Data
		otpID := d["otp_id"].(string)
		if !strings.HasPrefix(otpID, "r_otp_") || d["factor"] != "1234" || d["to"] != "+14155550100" || d["success_url"] != "https://app.example/ok" {
			t.Fatalf("data = %v", d)
		}
		if ui := d["ui"].(map[string]any); ui["qr_code"] != "sms:+14155550100?body=1234" || !strings.Contains(ui["text"].(string), "Envoyez 1234") {
			t.Fatalf("ui = %v", ui)
		}
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: "1234"}))
		w = h.do("GET", "/otp/reverse/verify/"+otpID, shopKey, nil, nil)
		if !strings.Contains(w.Body.String(), `"status":"verified"`) {
			t.Fatalf("verify = %s", w.Body)
		}
		w = h.do("POST", "/otp/reverse/cancel/"+otpID, shopKey, nil, nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"object":"error"`) || !strings.Contains(w.Body.String(), `"id":"err_`) {
			t.Fatalf("cancel verified = %d %s", w.Code, w.Body)
		}
		w = h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"factor": "1234"}`), nil)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"status":400`) {
			t.Fatalf("no number = %d %s", w.Code, w.Body)
		}
		w = h.do("POST", "/otp/reverse/initiate", "nope-nope-nope-nope", []byte(`{"number": "+14155550123"}`), nil)
		if w.Code != 401 || !strings.Contains(w.Body.String(), `"object":"error"`) {
			t.Fatalf("bad key = %d %s", w.Code, w.Body)
		}
		w = h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "service": "imessage"}`), nil)
		if w.Code != 400 {
			t.Fatalf("imessage = %d", w.Code)
		}
	})
}

func TestNumbersHealthMetrics(t *testing.T) {
	h := newHarness(t, testYAML)
	h.mustCreate(`{"number": "+14155550123"}`)
	w := h.do("GET", "/v1/numbers", shopKey, nil, nil)
	var out struct{ Data []map[string]any }
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != 200 || len(out.Data) != 4 || out.Data[0]["pending"] != 1.0 || out.Data[0]["health"] != "healthy" || out.Data[0]["country"] != "US" {
		t.Fatalf("numbers = %d %s", w.Code, w.Body)
	}
	if w := h.do("GET", "/v1/numbers", "", nil, nil); w.Code != 401 {
		t.Fatalf("numbers without key = %d", w.Code)
	}
	if w := h.do("GET", "/healthz", "", nil, nil); w.Code != 200 {
		t.Fatal("healthz")
	}
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 200 {
		t.Fatal("readyz")
	}
	h.s.SetReady(false)
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 503 {
		t.Fatal("readyz not ready")
	}
	m := h.do("GET", "/metrics", "", nil, nil).Body.String()
	for _, want := range []string{"mogate_verifications_created_total{api=\"v1\"} 1", "mogate_pending_verifications 1", "mogate_http_request_duration_seconds_bucket{code=\"201\",route=\"/v1/verifications\""} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if w := h.do("GET", "/nope", "", nil, nil); w.Code != 404 || !strings.Contains(w.Body.String(), `"code":"not_found"`) {
		t.Fatalf("404 = %s", w.Body)
	}
	if w := h.do("DELETE", "/v1/numbers", shopKey, nil, nil); w.Code != 405 {
		t.Fatalf("405 = %d", w.Code)
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	h := newHarness(t, testYAML)
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.s.Serve(ctx, ln, 5*time.Second) }()
	base := "http://" + ln.Addr().String()
	v := h.mustCreate(`{"number": "+14155550123"}`)
	poll := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/verifications/"+v["id"].(string)+"?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+shopKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			poll <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		poll <- resp.StatusCode
	}()
	waitConns(t, h, "active", 1) // the long-poll is being served
	cancel()
	select {
	case code := <-poll:
		if code != 200 {
			t.Fatalf("long-poll during shutdown = %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not end the long-poll")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestStorageFailureAnswers503: with the journal gone every write is a
// 503 (the provider retries) — but a call is declined all the same, since a
// voice request is not retried but answered by the provider's fallback,
// which would answer and bill the call.
func TestStorageFailureAnswers503(t *testing.T) {
	y := strings.Replace(testYAML, `{number: "+14155550100", provider: twilio}`, `{number: "+14155550100", provider: twilio, channels: [sms, call]}`, 1)
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	s, st, err := open(Options{Config: cfg}, false)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, m: st.Memory, h: s.Handler(), logs: &syncBuffer{}, now: time.Now()}
	s.SetReady(true)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	untouched := h.mustCreate(`{"number": "+14155550125"}`)
	_ = h.m.Log().Close() // the disk is gone: every append fails from now on
	w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("webhook with a broken log = %d %s", w.Code, w.Body)
	}
	w = h.send(h.signed("twilio", adapters.Inbound{Channel: adapters.ChannelCall, MessageID: "CAbroken", From: "+14155550123", To: "+14155550100", Attestation: "A"}))
	if w.Code != 200 || w.Body.String() != adapters.RejectCall {
		t.Fatalf("a call with a broken log = %d %s, want the <Reject>", w.Code, w.Body)
	}
	if code, out := h.create(shopKey, `{"number": "+14155550124"}`, nil); code != 503 {
		t.Fatalf("create with a broken log = %d %v", code, out)
	}
	if w := h.do("POST", "/v1/verifications/"+untouched["id"].(string)+"/cancel", shopKey, nil, nil); w.Code != 503 {
		t.Fatalf("cancel with a broken log = %d", w.Code)
	}
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 503 {
		t.Fatalf("readyz with a broken log = %d", w.Code)
	}
}

// TestReceivingNumberAndNationalSender: an Android phone forwards an SMS with
// a national sender and no receiving number; the provider entry's number
// fills in, and the sender is resolved with its country.
func TestReceivingNumberAndNationalSender(t *testing.T) {
	y := strings.Replace(testYAML, "numbers:\n", "  - {name: phone, type: smsgate, signing_key: phone-SECRETVALUE-7}\nnumbers:\n  - {number: \"+14155550199\", provider: phone}\n", 1)
	h := newHarness(t, y)
	v := h.mustCreate(`{"number": "+16505551212", "to": "+14155550199"}`)
	w := h.send(h.signed("phone", adapters.Inbound{From: "6505551212", Text: "code " + v["code"].(string)}))
	if w.Code != 200 {
		t.Fatalf("webhook = %d %s", w.Code, w.Body)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" || got["verified_number"] != "+16505551212" {
		t.Fatalf("after webhook: %v", got)
	}
	// Basic-auth providers get a challenge when credentials are missing.
	y2 := strings.Replace(testYAML, "numbers:\n", "  - {name: bw, type: bandwidth, username: u, password: bw-SECRETVALUE-8}\nnumbers:\n", 1)
	h2 := newHarness(t, y2)
	w = h2.do("POST", "/webhooks/bw", "", []byte(`[]`), nil)
	if w.Code != 401 || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("bandwidth without credentials = %d %v", w.Code, w.Header())
	}
}
