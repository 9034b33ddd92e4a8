package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
)

// shopLine is testYAML's API key shop, whose events the tests below send.
const shopLine = "  - {name: shop, key: " + shopKey + ", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}\n"

// shopHooked is testYAML with shop's events going to url.
func shopHooked(url string) string {
	return strings.Replace(testYAML, shopLine, "  - {name: shop, key: "+shopKey+", webhook_secret: "+whsec+", webhook_url: "+url+"}\n", 1) + allowPrivate
}

// withoutShop is testYAML without the API key shop.
func withoutShop(t *testing.T) string {
	t.Helper()
	if !strings.Contains(testYAML, shopLine) {
		t.Fatal("testYAML has no shop line")
	}
	return strings.Replace(testYAML, shopLine, "", 1) + allowPrivate
}

func mustParse(t *testing.T, y string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// metric is the value of an unlabelled metric in h's scrape (0 when absent).
func metric(h *harness, name string) float64 {
	for line := range strings.SplitSeq(h.do("GET", "/metrics", "", nil, nil).Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func (h *harness) verify(v map[string]any) {
	h.t.Helper()
	if w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: v["to"].(string), Text: v["code"].(string)})); w.Code != 200 {
		h.t.Fatalf("webhook = %d %s", w.Code, w.Body)
	}
}

func (h *harness) notified(id string) matcher.Notified {
	s, _ := h.m.Get(context.Background(), id)
	return s.Notified
}

// TestEventOfRemovedKeyWaitsForItsReturn: a reload that removes an API key
// for a while loses none of its events: they are handed back undelivered,
// counted, logged, and delivered once a reload brings the key back, with
// no failed attempt counted.
func TestEventOfRemovedKeyWaitsForItsReturn(t *testing.T) {
	rcv := newReceiver(t)
	with := shopHooked(rcv.srv.URL)
	h, _ := startOutbox(t, with, OutboxOptions{BaseDelay: 10 * time.Millisecond, UnknownKeyRetry: 20 * time.Millisecond})
	v := h.mustCreate(`{"number": "+14155550123"}`)
	if err := h.s.Reload(mustParse(t, withoutShop(t))); err != nil {
		t.Fatal(err)
	}
	h.verify(v)
	eventually(t, "the event to be handed back twice (or dropped)", func() bool {
		return metric(h, "mogate_events_unknown_key_total") >= 2 || h.notified(v["id"].(string)) != matcher.NotNotified
	})
	if rcv.calls() != 0 || h.notified(v["id"].(string)) != matcher.NotNotified {
		t.Fatalf("an event of an unknown key: %d calls, notified %v", rcv.calls(), h.notified(v["id"].(string)))
	}
	if !strings.Contains(h.logs.String(), "events held") {
		t.Fatal("no log line about the held events")
	}
	if err := h.s.Reload(mustParse(t, with)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the delivery", func() bool { return len(rcv.accepted()) == 1 })
	verifyStandard(t, rcv.accepted()[0])
	eventually(t, "notified state", func() bool { return h.notified(v["id"].(string)) == matcher.Delivered })
	if n := metric(h, "mogate_event_attempts_failed_total"); n != 0 {
		t.Fatalf("%v failed attempts counted for a held event", n)
	}
}

// TestEventOfUnknownKeyDiesAtMaxAge: an event whose key never comes back
// dies at the end of its window, as any undelivered event, never before.
func TestEventOfUnknownKeyDiesAtMaxAge(t *testing.T) {
	rcv := newReceiver(t)
	const maxAge = 300 * time.Millisecond
	h, _ := startOutbox(t, shopHooked(rcv.srv.URL), OutboxOptions{BaseDelay: 10 * time.Millisecond, MaxAge: maxAge, UnknownKeyRetry: 10 * time.Millisecond})
	v := h.mustCreate(`{"number": "+14155550123"}`)
	if err := h.s.Reload(mustParse(t, withoutShop(t))); err != nil {
		t.Fatal(err)
	}
	h.verify(v)
	id := v["id"].(string)
	eventually(t, "the event to go dead", func() bool { return h.notified(id) != matcher.NotNotified })
	s, _ := h.m.Get(context.Background(), id)
	if s.Notified != matcher.Dead || rcv.calls() != 0 {
		t.Fatalf("notified %v after %d calls, want dead after none", s.Notified, rcv.calls())
	}
	if age := time.Since(s.FinishedAt); age < maxAge {
		t.Fatalf("dead after %v, before its window of %v ended", age, maxAge)
	}
	if metric(h, "mogate_events_dead_total") != 1 || metric(h, "mogate_events_unknown_key_total") < 1 ||
		!strings.Contains(h.logs.String(), `"reason":"unknown_key"`) {
		t.Fatal("dead event of an unknown key not visible in metrics and logs")
	}
}

// TestQueuedEventOfRemovedKeyIsHeld: an event claimed while its key was
// known and still queued when a reload removes the key is handed back,
// not dropped, and delivered once the key returns.
func TestQueuedEventOfRemovedKeyIsHeld(t *testing.T) {
	gate, started := make(chan struct{}), make(chan struct{}, 8)
	var mu sync.Mutex
	var ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-gate
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(gate) })
	with := shopHooked(srv.URL)
	// Two workers: one attempt in flight per API key, the other event queued.
	h, _ := startOutbox(t, with, OutboxOptions{BaseDelay: 10 * time.Millisecond, Workers: 2, UnknownKeyRetry: 20 * time.Millisecond})
	v1, v2 := h.mustCreate(`{"number": "+14155550123"}`), h.mustCreate(`{"number": "+14155550124"}`)
	h.verify(v1)
	h.send(h.signed("twilio", adapters.Inbound{From: "+14155550124", To: v2["to"].(string), Text: v2["code"].(string)}))
	<-started
	eventually(t, "both events held", func() bool { return metric(h, "mogate_outbox_backlog") == 2 })
	if err := h.s.Reload(mustParse(t, withoutShop(t))); err != nil {
		t.Fatal(err)
	}
	gate <- struct{}{} // the first attempt, signed before the reload, succeeds
	both := func() bool {
		return h.notified(v1["id"].(string)) == matcher.Delivered && h.notified(v2["id"].(string)) == matcher.Delivered
	}
	eventually(t, "the queued event handed back (or dropped)", func() bool { return metric(h, "mogate_events_unknown_key_total") >= 1 || both() })
	mu.Lock()
	if len(ids) != 1 || both() {
		t.Fatalf("%d deliveries while the key was gone, both recorded delivered: %v", len(ids), both())
	}
	mu.Unlock()
	if err := h.s.Reload(mustParse(t, with)); err != nil {
		t.Fatal(err)
	}
	<-started
	gate <- struct{}{}
	eventually(t, "both notified", both)
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("deliveries %v", ids)
	}
}
