package gateway

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// logLines returns the JSON log lines whose msg is msg.
func logLines(t *testing.T, logs, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestAccessLogClientIP: one access line per request with the route
// template; X-Forwarded-For is believed only from a trusted proxy.
func TestAccessLogClientIP(t *testing.T) {
	h := newHarness(t, testYAML+"trusted_proxies: [192.0.2.10]\n")
	v := h.mustCreate(`{"number": "+14155550123"}`)
	for _, tc := range []struct{ peer, want string }{
		{"192.0.2.10:4000", "203.0.113.9"},    // trusted proxy: the client it names
		{"198.51.100.7:4000", "198.51.100.7"}, // anyone else: the peer, whatever it claims
	} {
		r := httptest.NewRequest("GET", "/v1/verifications/"+v["id"].(string), nil)
		r.RemoteAddr = tc.peer
		r.Header.Set("Authorization", "Bearer "+shopKey)
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		h.h.ServeHTTP(httptest.NewRecorder(), r)
		lines := logLines(t, h.logs.String(), "request")
		last := lines[len(lines)-1]
		if last["client_ip"] != tc.want || last["route"] != "/v1/verifications/:id" || last["method"] != "GET" ||
			last["status"] != float64(200) || last["duration_ms"] == nil {
			t.Fatalf("peer %s: access line %v, want client_ip %s", tc.peer, last, tc.want)
		}
	}
	if n := len(logLines(t, h.logs.String(), "request")); n != 3 {
		t.Fatalf("%d access lines for 3 requests", n)
	}
}

// TestLifecycleLogsNeverACode walks a session through every lifecycle step
// and checks each has its line (id, key, masked numbers, provider), and
// that no code, message text or full sender number is in the logs.
func TestLifecycleLogsNeverACode(t *testing.T) {
	h := newHarness(t, testYAML)
	h.runOutbox()
	const sender, code, wrong = "+14155550123", "ZQ7XK9PW", "WRONG7QX"
	v := h.mustCreate(`{"number": "` + sender + `", "code": "` + code + `"}`)
	id := v["id"].(string)
	if w := h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM1", From: sender, To: "+14155550100", Text: "it is " + wrong})); w.Code != 200 {
		t.Fatalf("attempt = %d", w.Code)
	}
	if w := h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM2", From: sender, To: "+14155550100", Text: "code " + code})); w.Code != 200 {
		t.Fatalf("verify = %d", w.Code)
	}
	old := h.mustCreate(`{"number": "+14155550124", "code": "QQ11RR22"}`)
	h.mustCreate(`{"number": "+14155550124", "code": "SS33TT44"}`) // supersedes old
	gone := h.mustCreate(`{"number": "+14155550125", "code": "UU55VV66"}`)
	h.do("POST", "/v1/verifications/"+gone["id"].(string)+"/cancel", shopKey, nil, nil)
	late := h.mustCreate(`{"number": "+14155550126", "code": "WW77XX88", "ttl_seconds": 1}`)
	h.advance(2 * time.Second)
	if err := h.m.Sweep(); err != nil {
		t.Fatal(err)
	}
	h.awaitFinals(4)
	steps := []struct{ msg, id string }{
		{"verification created", id}, {"verification attempt", id}, {"verification verified", id},
		{"verification superseded", old["id"].(string)}, {"verification cancelled", gone["id"].(string)},
		{"verification expired", late["id"].(string)},
	}
	// A final status is counted, then logged: the last line may follow
	// the count that awaitFinals saw.
	var logs string
	eventually(t, "a line for every lifecycle step", func() bool {
		logs = h.logs.String()
		for _, tc := range steps {
			if !strings.Contains(logs, `"msg":"`+tc.msg+`"`) || !strings.Contains(logs, tc.id) {
				return false
			}
		}
		return true
	})
	for _, tc := range steps {
		found := false
		for _, l := range logLines(t, logs, tc.msg) {
			if l["id"] == tc.id {
				found = true
				if l["key"] != "shop" || l["provider"] != "twilio" || !strings.Contains(l["number"].(string), "*") {
					t.Errorf("%s line lacks key, provider or a masked number: %v", tc.msg, l)
				}
			}
		}
		if !found {
			t.Errorf("no %q line for %s", tc.msg, tc.id)
		}
	}
	for _, secret := range []string{code, wrong, "QQ11RR22", "SS33TT44", "UU55VV66", "WW77XX88", "it is", sender} {
		if strings.Contains(logs, secret) {
			t.Errorf("%q appears in the logs", secret)
		}
	}
}

// TestRefusedWebhookLogged: a bad signature is logged with the client IP
// and the URL the signature was checked against, never the query or body.
func TestRefusedWebhookLogged(t *testing.T) {
	h := newHarness(t, testYAML)
	r := h.signed("twilio", adapters.Inbound{MessageID: "SM9", From: "+14155550123", To: "+14155550100", Text: "code 123456"})
	r.Header.Set("X-Twilio-Signature", "forged")
	r.URL.RawQuery = "text=123456"
	if w := h.send(r); w.Code != 403 && w.Code != 401 {
		t.Fatalf("forged = %d", w.Code)
	}
	lines := logLines(t, h.logs.String(), "webhook refused")
	if len(lines) != 1 || lines[0]["signed_url"] != publicURL+"/webhooks/twilio" || lines[0]["client_ip"] != "192.0.2.1" {
		t.Fatalf("refusal lines = %v", lines)
	}
	if strings.Contains(h.logs.String(), "123456") {
		t.Fatal("the refused message's text reached the logs")
	}
}

// TestMetricsFunnel scrapes after a verified, a failed, a cancelled and an
// expired session and checks the per-number funnel, time-to-verify, the
// breaker gauge, build info and rate-limited counts; long-polls stay out of
// the latency histogram.
func TestMetricsFunnel(t *testing.T) {
	h := newHarness(t, strings.Replace(testYAML, "creates_per_number_per_hour: 1000", "creates_per_number_per_hour: 2", 1))
	h.runOutbox()
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.advance(7 * time.Second)
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM1", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	h.do("GET", "/v1/verifications/"+v["id"].(string)+"?wait=1s", shopKey, nil, nil)
	c := h.mustCreate(`{"number": "+14155550124"}`)
	h.do("POST", "/v1/verifications/"+c["id"].(string)+"/cancel", shopKey, nil, nil)
	h.mustCreate(`{"number": "+14155550124"}`)
	if code, _ := h.create(shopKey, `{"number": "+14155550124"}`, nil); code != 429 {
		t.Fatalf("third create for one number = %d, want 429", code)
	}
	h.awaitFinals(2)
	body := h.do("GET", "/metrics", "", nil, nil).Body.String()
	for _, want := range []string{
		`mogate_number_verifications_total{channel="sms",number="+14155550100",provider="twilio",step="created"} 3`,
		`mogate_number_verifications_total{channel="sms",number="+14155550100",provider="twilio",step="verified"} 1`,
		`mogate_number_verifications_total{channel="sms",number="+14155550100",provider="twilio",step="cancelled"} 1`,
		`mogate_time_to_verify_seconds_bucket{provider="twilio",le="5"} 0`,
		`mogate_time_to_verify_seconds_bucket{provider="twilio",le="10"} 1`,
		`mogate_number_breaker_state{number="+447700900123",provider="vonage"} 0`,
		`mogate_build_info{goversion="`,
		`mogate_rate_limited_total{route="/v1/verifications"} 1`,
		`mogate_outbox_backlog `, `mogate_outbox_oldest_age_seconds `,
		`mogate_storage_errors_total{op="wal_fsync"} 0`,
		`mogate_messages_total{channel="sms",outcome="verified",provider="twilio"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(body, `route="/v1/verifications/:id",code="200"`) {
		t.Error("a ?wait long-poll is in the latency histogram")
	}
}

// TestAdminListen: with admin_listen set, /metrics is 404 on the public
// handler and served by AdminHandler.
func TestAdminListen(t *testing.T) {
	h := newHarness(t, testYAML+"admin_listen: 127.0.0.1:9099\n")
	if w := h.do("GET", "/metrics", "", nil, nil); w.Code != 404 {
		t.Fatalf("public /metrics = %d", w.Code)
	}
	w := httptest.NewRecorder()
	h.s.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "mogate_build_info") {
		t.Fatalf("admin /metrics = %d", w.Code)
	}
}

// TestReload: a reload adds and removes API keys and numbers, keeps
// pending sessions, reaches the outbox's keys and the log level, and
// refuses a number of a provider entry the process does not run.
func TestReload(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	const newKey = "brand-new-api-key-0001"
	next := strings.Replace(testYAML, "  - {name: other, key: "+otherKey+"}", "  - {name: new, key: "+newKey+"}", 1)
	next = strings.Replace(next, `  - {number: "+447700900124", provider: vonage-messages, countries: [GB]}`, `  - {number: "+447700900125", provider: vonage-messages, countries: [GB]}`, 1)
	cfg, err := config.Parse([]byte(next+"log_level: error\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h.s.level = new(slog.LevelVar)
	if err := h.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if h.s.level.Level() != slog.LevelError {
		t.Fatalf("log level after reload = %s", h.s.level.Level())
	}
	if code, _ := h.create(otherKey, `{"number": "+14155550124"}`, nil); code != 401 {
		t.Fatalf("removed key = %d", code)
	}
	if code, _ := h.create(newKey, `{"number": "+14155550124"}`, nil); code != 201 {
		t.Fatalf("added key = %d", code)
	}
	if code, out := h.create(shopKey, `{"number": "+447400123456", "to": "+447700900125"}`, nil); code != 201 {
		t.Fatalf("added number = %d %v", code, out)
	}
	if h.s.outbox.Key("new") == nil || h.s.outbox.Key("other") != nil {
		t.Fatal("the outbox did not see the reloaded keys")
	}
	h.send(h.signed("twilio", adapters.Inbound{MessageID: "SM1", From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("a session from before the reload = %v", got["status"])
	}
	bad := cfg
	bad.Numbers = append(bad.Numbers[:len(bad.Numbers):len(bad.Numbers)], config.Number{Number: "+14155550199", Provider: "telnyx", Weight: 1})
	if err := h.s.Reload(bad); err == nil || !strings.Contains(err.Error(), "telnyx") {
		t.Fatalf("reload with an unknown provider entry: %v", err)
	}
	if _, ok := h.s.live().pool.Lookup("+14155550199"); ok {
		t.Fatal("a refused reload changed the pool")
	}
}

// TestDrain: after Drain, /readyz answers 503 for good (SetReady(true), as
// a Serve starting late does, does not undo it) while the API still answers.
func TestDrain(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.s.Drain()
	h.s.SetReady(true)
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 503 {
		t.Fatalf("readyz while draining = %d", w.Code)
	}
	if got := h.get(v["id"].(string)); got["status"] != "pending" {
		t.Fatalf("API while draining: %v", got)
	}
}

// TestReloadMetric: mogate_config_reload_success is 1 at start, 0 after a
// refused reload (by Reload, or a file that did not load), 1 again after a
// good one; the timestamp moves with every attempt.
func TestReloadMetric(t *testing.T) {
	h := newHarness(t, testYAML)
	value := func(name string) float64 { t.Helper(); return h.metric(name) }
	const ok, at = "mogate_config_reload_success", "mogate_config_reload_timestamp_seconds"
	start := float64(time.Now().Add(-time.Minute).Unix())
	if value(ok) != 1 || value(at) < start {
		t.Fatalf("at start: %s %v, %s %v", ok, value(ok), at, value(at))
	}
	cfg := h.s.cfg
	bad := cfg
	bad.Numbers = append(bad.Numbers[:len(bad.Numbers):len(bad.Numbers)], config.Number{Number: "+14155550199", Provider: "telnyx", Weight: 1})
	if err := h.s.Reload(bad); err == nil {
		t.Fatal("a number of an entry the process does not run was accepted")
	}
	if value(ok) != 0 {
		t.Fatalf("after a refused reload: %s %v", ok, value(ok))
	}
	if err := h.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	if value(ok) != 1 {
		t.Fatalf("after a good reload: %s %v", ok, value(ok))
	}
	h.s.ReloadFailed()
	if value(ok) != 0 || value(at) < start {
		t.Fatalf("after a file that did not load: %s %v, %s %v", ok, value(ok), at, value(at))
	}
}

// metric returns the value of an unlabelled series in a scrape.
func (h *harness) metric(name string) float64 {
	h.t.Helper()
	for line := range strings.Lines(h.do("GET", "/metrics", "", nil, nil).Body.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				h.t.Fatal(err)
			}
			return f
		}
	}
	h.t.Fatalf("no %s in the scrape", name)
	return 0
}

// TestReadyMetric: mogate_ready follows /readyz: 0 before the server is
// ready, 1 once it is, 0 again while it drains.
func TestReadyMetric(t *testing.T) {
	h := newHarness(t, testYAML)
	h.s.SetReady(false)
	for _, step := range []struct {
		name  string
		do    func()
		code  int
		ready float64
	}{
		{"starting", func() {}, 503, 0},
		{"ready", func() { h.s.SetReady(true) }, 200, 1},
		{"draining", h.s.Drain, 503, 0},
	} {
		step.do()
		if w := h.do("GET", "/readyz", "", nil, nil); w.Code != step.code {
			t.Fatalf("%s: /readyz = %d, want %d", step.name, w.Code, step.code)
		}
		if got := h.metric("mogate_ready"); got != step.ready {
			t.Fatalf("%s: mogate_ready = %v, want %v", step.name, got, step.ready)
		}
	}
}
