package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/mogate/mogate/adapters"
)

// spec is the embedded document, loaded and validated as OpenAPI 3.1.
type spec struct {
	doc     *openapi3.T
	router  routers.Router
	mu      sync.Mutex
	covered map[string]bool // "METHOD /path/{template}" of validated answers
}

var registerDecoders sync.Once

func loadSpec(t *testing.T) *spec {
	t.Helper()
	registerDecoders.Do(func() {
		// Bodies that are not JSON are checked as strings.
		for _, ct := range []string{"text/event-stream", "image/png", "text/html", "text/xml"} {
			openapi3filter.RegisterBodyDecoder(ct, func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
				b, err := io.ReadAll(r)
				return string(b), err
			})
		}
	})
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &spec{doc: doc, router: r, covered: map[string]bool{}}
}

// check validates one real answer against the document: the route must be
// described, and the status, headers and body must be one of its answers.
func (s *spec) check(t *testing.T, req *http.Request, w *httptest.ResponseRecorder) {
	t.Helper()
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in openapi.json: %v", req.Method, req.URL, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: w.Code, Header: w.Header(), Body: io.NopCloser(bytes.NewReader(w.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	if err != nil {
		t.Errorf("%s %s answered %d, not as openapi.json says: %v\nbody: %.400s", req.Method, req.URL, w.Code, err, w.Body)
	}
	s.mu.Lock()
	s.covered[req.Method+" "+route.Path] = true
	s.mu.Unlock()
}

// schema validates raw against a component schema.
func (s *spec) schema(t *testing.T, name string, raw []byte) {
	t.Helper()
	ref := s.doc.Components.Schemas[name]
	if ref == nil {
		t.Fatalf("no schema %s in openapi.json", name)
	}
	s.validate(t, name, ref.Value, raw)
}

// event validates raw against the body of one of the document's webhooks:
// an event mogate posts to apps.
func (s *spec) event(t *testing.T, webhook string, raw []byte) {
	t.Helper()
	item := s.doc.Webhooks[webhook]
	if item == nil || item.Post == nil || item.Post.RequestBody == nil {
		t.Fatalf("no webhook %s in openapi.json", webhook)
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil {
		t.Fatalf("webhook %s has no JSON body", webhook)
	}
	s.validate(t, webhook, mt.Schema.Value, raw)
}

func (s *spec) validate(t *testing.T, name string, sc *openapi3.Schema, raw []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v: %s", name, err, raw)
	}
	if err := sc.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		t.Errorf("not a %s: %v\n%s", name, err, raw)
	}
}

// sseData returns the data lines of an event stream.
func sseData(body string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if d, ok := strings.CutPrefix(l, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// TestOpenAPIMatchesAnswers calls every route and validates each real
// answer (status, headers, body) against openapi.json; every route of the
// engine is described and every described operation is exercised.
func TestOpenAPIMatchesAnswers(t *testing.T) {
	sp := loadSpec(t)
	h := newHarness(t, strings.Replace(testYAML, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 3", 1))
	call := func(method, path, key string, body []byte, hdr http.Header) *httptest.ResponseRecorder {
		t.Helper()
		w := h.do(method, path, key, body, hdr)
		r := httptest.NewRequest(method, path, bytes.NewReader(body))
		for k, v := range hdr {
			r.Header[k] = v
		}
		sp.check(t, r, w)
		return w
	}
	jsonOf := func(w *httptest.ResponseRecorder) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return m
	}
	want := func(w *httptest.ResponseRecorder, status int) {
		t.Helper()
		if w.Code != status {
			t.Fatalf("answered %d, want %d: %s", w.Code, status, w.Body)
		}
	}
	idem := http.Header{"Idempotency-Key": {"k1"}}

	// Operations and health.
	want(call("GET", "/openapi.json", "", nil, nil), 200)
	want(call("GET", "/healthz", "", nil, nil), 200)
	want(call("GET", "/readyz", "", nil, nil), 200)
	h.s.SetReady(false)
	want(call("GET", "/readyz", "", nil, nil), 503)
	h.s.SetReady(true)
	want(call("GET", "/metrics", "", nil, nil), 200)

	// The native API.
	v := jsonOf(call("POST", "/v1/verifications", shopKey, []byte(`{"number":"+14155550123","metadata":{"a":1},"callback_url":"https://app.example.com/cb"}`), idem))
	id, token := v["id"].(string), strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL+"/v/")
	want(call("POST", "/v1/verifications", shopKey, []byte(`{"number":"+14155550123","metadata":{"a":1},"callback_url":"https://app.example.com/cb"}`), idem), 201)
	want(call("POST", "/v1/verifications", shopKey, []byte(`{"number":"+14155550123"}`), idem), 409)
	want(call("POST", "/v1/verifications", shopKey, []byte(`{"number":`), nil), 400)
	want(call("POST", "/v1/verifications", "", []byte(`{}`), nil), 401)
	want(call("POST", "/v1/verifications", shopKey, []byte(`{"number":"12"}`), nil), 422)
	want(call("POST", "/v1/verifications", shopKey, bytes.Repeat([]byte(" "), maxBody+1), nil), 413)
	capture := jsonOf(call("POST", "/v1/verifications", shopKey, []byte(`{"country":"US"}`), nil))
	if capture["number"] != nil {
		t.Fatalf("capture mode number = %v", capture["number"])
	}
	for range 3 {
		call("POST", "/v1/verifications", shopKey, []byte(`{"number":"+14155550124"}`), nil)
	}
	w := call("POST", "/v1/verifications", shopKey, []byte(`{"number":"+14155550124"}`), nil)
	want(w, 429)
	want(call("GET", "/v1/verifications?number=%2B14155550123", shopKey, nil, nil), 200)
	want(call("GET", "/v1/verifications?number=%2B14155550123&status=failed", shopKey, nil, nil), 400)
	want(call("GET", "/v1/verifications?number=x", shopKey, nil, nil), 422)
	want(call("GET", "/v1/verifications/"+id, shopKey, nil, nil), 200)
	want(call("GET", "/v1/verifications/"+id+"?wait=0s", shopKey, nil, nil), 200)
	want(call("GET", "/v1/verifications/"+id+"?wait=forever", shopKey, nil, nil), 400)
	want(call("GET", "/v1/verifications/"+id, otherKey, nil, nil), 404)
	want(call("GET", "/v1/verifications/"+id, "wrong-key-xxxxxxxxxxxx", nil, nil), 401)
	want(call("GET", "/v1/numbers", shopKey, nil, nil), 200)
	want(call("GET", "/v1/verifications/"+id+"/qr.png", shopKey, nil, nil), 200)
	want(call("GET", "/v1/verifications/vrf_nope/qr.png", shopKey, nil, nil), 404)
	want(call("GET", "/v1/verifications/"+id+"/qr.png", "", nil, nil), 401)
	want(call("GET", "/v1/verifications/"+id+"/qr.png", otherKey, nil, nil), 404)
	want(call("GET", "/v/"+token, "", nil, nil), 200)
	want(call("GET", "/v/"+token+"/qr.png", "", nil, nil), 200)
	want(call("GET", "/v/pt_nope", "", nil, nil), 404)

	// Webhooks: each answer kind, then the verified session everywhere.
	msg := adapters.Inbound{MessageID: "SMoa1", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}
	sendChecked := func(r *adapters.Request) *httptest.ResponseRecorder {
		path := r.URL.Path
		if r.URL.RawQuery != "" {
			path += "?" + r.URL.RawQuery
		}
		return call(r.Method, path, "", r.Body, r.Header)
	}
	forged := h.signed("twilio", adapters.Inbound{MessageID: "SMoa0", From: "+14155550123", To: "+14155550100", Text: "1"})
	forged.Header.Set("X-Twilio-Signature", "forged")
	want(sendChecked(forged), 403)
	forged.Header.Del("X-Twilio-Signature")
	want(sendChecked(forged), 401)
	want(call("POST", "/webhooks/nope", "", []byte("x"), nil), 404)
	want(call("GET", "/webhooks/nope", "", nil, nil), 404)
	want(sendChecked(h.signed("twilio", msg)), 200)
	want(sendChecked(h.signed("plivo", adapters.Inbound{MessageID: "pl1", From: "+33612345678", To: "+33757000000", Text: "hello"})), 200)
	want(sendChecked(h.signed("vonage", adapters.Inbound{MessageID: "vo1", From: "+447700900999", To: "+447700900123", Text: "hello"})), 200)
	detail := call("GET", "/v1/verifications/"+id, shopKey, nil, nil)
	if jsonOf(detail)["status"] != "verified" {
		t.Fatalf("after the webhook: %s", detail.Body)
	}
	for _, d := range sseData(call("GET", "/v1/verifications/"+id+"/events", shopKey, nil, nil).Body.String()) {
		sp.schema(t, "StatusEvent", []byte(d))
	}
	for _, d := range sseData(call("GET", "/v/"+token+"/events", "", nil, nil).Body.String()) {
		sp.schema(t, "PageEvent", []byte(d))
	}
	want(call("GET", "/v1/verifications/vrf_nope/events", shopKey, nil, nil), 404)
	want(call("POST", "/v1/verifications/"+id+"/cancel", shopKey, nil, nil), 409)
	want(call("POST", "/v1/verifications/"+capture["id"].(string)+"/cancel", shopKey, nil, nil), 200)

	// The Contiguity-compatible API.
	c := jsonOf(call("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number":"+14155550125","factor":"blue horse"}`), nil))
	otp := c["data"].(map[string]any)["otp_id"].(string)
	want(call("POST", "/otp/reverse/initiate", shopKey, []byte(`{"factor":"1"}`), nil), 400)
	want(call("POST", "/otp/reverse/initiate", "", []byte(`{}`), nil), 401)
	want(call("GET", "/otp/reverse/verify/"+otp, shopKey, nil, nil), 200)
	want(call("GET", "/otp/reverse/verify/r_otp_nope", shopKey, nil, nil), 404)
	want(call("POST", "/otp/reverse/cancel/"+otp, shopKey, nil, nil), 200)
	want(call("POST", "/otp/reverse/cancel/"+otp, shopKey, nil, nil), 400)

	// Every route of the engine is described, and every described
	// operation was exercised.
	for _, r := range h.s.engine.Routes() {
		path := r.Path
		for _, seg := range strings.Split(path, "/") {
			if p, ok := strings.CutPrefix(seg, ":"); ok {
				path = strings.Replace(path, seg, "{"+p+"}", 1)
			}
		}
		if path == "/v/{token}" || strings.HasPrefix(path, "/v/{token}/") {
			path = strings.Replace(path, "{token}", "{page_token}", 1)
		}
		if sp.doc.Paths.Find(path) == nil || sp.doc.Paths.Find(path).GetOperation(r.Method) == nil {
			t.Errorf("route %s %s is not in openapi.json", r.Method, path)
		}
	}
	for path, item := range sp.doc.Paths.Map() {
		for method := range item.Operations() {
			if !sp.covered[method+" "+path] {
				t.Errorf("%s %s is described but no test answer was checked", method, path)
			}
		}
	}
}

// The events mogate posts to apps are the document's webhooks.
func TestOpenAPIEvents(t *testing.T) {
	sp := loadSpec(t)
	rcv := newReceiver(t)
	h, _ := outboxHarness(t, rcv.srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.mustCreate(`{"number": "+14155550123"}`) // supersedes v
	verified := h.mustCreate(`{"number": "+14155550124"}`)
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMev1", From: "+14155550124", To: "+14155550100", Text: verified["code"].(string)}))
	w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number":"+14155550125"}`), nil)
	var c struct{ Data struct{ Factor string } }
	_ = json.Unmarshal(w.Body.Bytes(), &c)
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMev2", From: "+14155550125", To: "+14155550100", Text: c.Data.Factor}))
	eventually(t, "three events", func() bool { return len(rcv.accepted()) == 3 })
	all := ""
	for _, g := range rcv.accepted() {
		all += string(g.body)
		name := "verification.event"
		if g.header.Get("Contiguity-Signature") != "" {
			name = "otp.reverse.verified"
		}
		sp.event(t, name, g.body)
	}
	if !strings.Contains(all, v["id"].(string)) || !strings.Contains(all, `"reason":"superseded"`) {
		t.Fatal("no event of the superseded verification")
	}
}
