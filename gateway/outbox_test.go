package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
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

const whsec = "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA=="

// allowPrivate lets events go to the tests' loopback receivers.
const allowPrivate = "events: {allow_private_destinations: true}\n"

// receiver records events and answers with the next status of its script
// (200 once the script runs out).
type receiver struct {
	mu     sync.Mutex
	script []int
	got    []recorded
	srv    *httptest.Server
}

type recorded struct {
	header http.Header
	body   []byte
	status int
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := 200
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.got = append(r.got, recorded{req.Header.Clone(), b, status})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) accepted() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, g := range r.got {
		if g.status == 200 {
			out = append(out, g)
		}
	}
	return out
}

func (r *receiver) calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, cond)
}

func eventuallyWithin(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verifyStandard checks a Standard Webhooks signature independently of the
// code under test.
func verifyStandard(t *testing.T, g recorded) {
	t.Helper()
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(whsec, "whsec_"))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(g.header.Get("webhook-id") + "." + g.header.Get("webhook-timestamp") + "." + string(g.body)))
	want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
	if g.header.Get("webhook-signature") != want || !strings.HasPrefix(g.header.Get("webhook-id"), "evt_") {
		t.Fatalf("bad signature headers: %v", g.header)
	}
	ts, _ := strconv.ParseInt(g.header.Get("webhook-timestamp"), 10, 64)
	if d := time.Since(time.Unix(ts, 0)); d > time.Minute || d < -time.Minute {
		t.Fatalf("webhook-timestamp %d is not now", ts)
	}
}

func outboxHarness(t *testing.T, webhookURL string, opt OutboxOptions) (*harness, context.CancelFunc) {
	t.Helper()
	return outboxHarnessOn(t, memoryStore, webhookURL, opt)
}

// outboxHarnessOn is outboxHarness on the store st.
func outboxHarnessOn(t *testing.T, st testStore, webhookURL string, opt OutboxOptions) (*harness, context.CancelFunc) {
	t.Helper()
	return startOutboxOn(t, st, strings.Replace(testYAML, "{name: shop, key: "+shopKey+", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}",
		"{name: shop, key: "+shopKey+", webhook_secret: "+whsec+", webhook_url: "+webhookURL+"}", 1)+allowPrivate, opt)
}

// startOutbox starts a server of configuration y on the memory store, and
// its outbox; the outbox stops when the test ends.
func startOutbox(t *testing.T, y string, opt OutboxOptions) (*harness, context.CancelFunc) {
	t.Helper()
	return startOutboxOn(t, memoryStore, y, opt)
}

// startOutboxOn is startOutbox on the store st; the server closes when the
// test ends, after its outbox stopped.
func startOutboxOn(t *testing.T, st testStore, y string, opt OutboxOptions) (*harness, context.CancelFunc) {
	t.Helper()
	cfg, err := config.Parse([]byte(y+st.extra), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, ws, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Outbox: opt}, st.memory)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	h.s, h.h, h.m = s, s.Handler(), ws.Memory
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunOutbox(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, cancel
}

func TestEventRetriedUntilAccepted(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		rcv := newReceiver(t, 500, 500)
		h, _ := outboxHarnessOn(t, st, rcv.srv.URL+"/hooks", OutboxOptions{BaseDelay: 10 * time.Millisecond})
		v := h.mustCreate(`{"number": "+14155550123", "metadata": {"order": 7}}`)
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
		eventually(t, "an accepted delivery", func() bool { return len(rcv.accepted()) == 1 })
		time.Sleep(50 * time.Millisecond)
		acc := rcv.accepted()
		if len(acc) != 1 || rcv.calls() != 3 {
			t.Fatalf("%d accepted of %d calls", len(acc), rcv.calls())
		}
		verifyStandard(t, acc[0])
		var ev struct {
			Type string
			Data map[string]any
		}
		_ = json.Unmarshal(acc[0].body, &ev)
		if ev.Type != "verification.verified" || ev.Data["id"] != v["id"] || ev.Data["verified_number"] != "+14155550123" || ev.Data["metadata"].(map[string]any)["order"] != 7.0 {
			t.Fatalf("event = %s", acc[0].body)
		}
		// Every attempt carried the same id: the receiver can drop repeats.
		for _, g := range rcv.got {
			if g.header.Get("webhook-id") != acc[0].header.Get("webhook-id") {
				t.Fatal("event id changed between attempts")
			}
		}
		eventually(t, "notified state", func() bool { return h.session(v["id"].(string)).Notified == matcher.Delivered })
	})
}

func TestCallbackURLOverridesAndOtherStatuses(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		keyRcv := newReceiver(t)
		cbRcv := newReceiver(t)
		h, _ := outboxHarnessOn(t, st, keyRcv.srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
		v := h.mustCreate(`{"number": "+14155550123", "callback_url": "` + cbRcv.srv.URL + `/cb"}`)
		h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil)
		eventually(t, "the cancelled event at callback_url", func() bool { return len(cbRcv.accepted()) == 1 })
		if !strings.Contains(string(cbRcv.accepted()[0].body), `"type":"verification.cancelled"`) || keyRcv.calls() != 0 {
			t.Fatalf("callback got %s; key URL got %d calls", cbRcv.accepted()[0].body, keyRcv.calls())
		}
		f := h.mustCreate(`{"number": "+14155550124"}`)
		for i := range 3 {
			h.send(h.signed("twilio", adapters.Inbound{MessageID: "SMx" + strconv.Itoa(i), From: "+14155550124", To: "+14155550100", Text: "000000"}))
		}
		eventually(t, "the failed event", func() bool { return len(keyRcv.accepted()) == 1 })
		if !strings.Contains(string(keyRcv.accepted()[0].body), `"type":"verification.failed"`) || !strings.Contains(string(keyRcv.accepted()[0].body), f["id"].(string)) {
			t.Fatalf("event = %s", keyRcv.accepted()[0].body)
		}
	})
}

func TestContiguityEvent(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		rcv := newReceiver(t)
		h, _ := outboxHarnessOn(t, st, rcv.srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
		w := h.do("POST", "/otp/reverse/initiate", shopKey, []byte(`{"number": "+14155550123", "factor": "4321"}`), nil)
		var env struct{ Data map[string]any }
		_ = json.Unmarshal(w.Body.Bytes(), &env)
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: "4321"}))
		eventually(t, "the otp.reverse.verified event", func() bool { return len(rcv.accepted()) == 1 })
		g := rcv.accepted()[0]
		var ev struct {
			ID, Type string
			Data     map[string]any
		}
		_ = json.Unmarshal(g.body, &ev)
		if ev.Type != "otp.reverse.verified" || ev.Data["otp_id"] != env.Data["otp_id"] || ev.Data["status"] != "verified" {
			t.Fatalf("event = %s", g.body)
		}
		sig := g.header.Get("Contiguity-Signature")
		tpart, v1, _ := strings.Cut(sig, ",v1=")
		m := hmac.New(sha256.New, []byte(whsec))
		m.Write([]byte(strings.TrimPrefix(tpart, "t=") + "." + string(g.body)))
		if v1 != hex.EncodeToString(m.Sum(nil)) {
			t.Fatalf("Contiguity-Signature %q does not verify", sig)
		}
	})
}

// TestEventSurvivesRestartWithReceiverDown: the receiver is down while mogate
// restarts; once both are back, the event arrives.
func TestEventSurvivesRestartWithReceiverDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet: the receiver is down
	y := strings.Replace(testYAML, "{name: shop, key: "+shopKey+", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}",
		"{name: shop, key: "+shopKey+", webhook_secret: "+whsec+", webhook_url: http://"+addr+"/hooks}", 1) + allowPrivate
	cfg, _ := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	cfg.DataDir = t.TempDir()
	start := func() (*harness, context.CancelFunc) {
		s, _, err := open(Options{Config: cfg, Outbox: OutboxOptions{BaseDelay: 10 * time.Millisecond}}, false)
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, s: s, h: s.Handler(), logs: &syncBuffer{}, now: time.Now()}
		ctx, cancel := context.WithCancel(context.Background())
		go s.RunOutbox(ctx)
		return h, cancel
	}
	h, stop := start()
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	eventually(t, "a few failed attempts", func() bool {
		n, _ := strconv.Atoi(h.scrapeValue("mogate_event_attempts_failed_total"))
		return n >= 2
	})
	stop()
	if err := h.s.Close(); err != nil {
		t.Fatal(err)
	}

	rcv := &receiver{}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", addr, err)
	}
	rcv.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		rcv.mu.Lock()
		rcv.got = append(rcv.got, recorded{req.Header.Clone(), b, 200})
		rcv.mu.Unlock()
	})}}
	rcv.srv.Start()
	defer rcv.srv.Close()
	h2, stop2 := start()
	defer stop2()
	defer h2.s.Close()
	eventually(t, "the event after the restart", func() bool { return len(rcv.accepted()) >= 1 })
	verifyStandard(t, rcv.accepted()[0])
	if !strings.Contains(string(rcv.accepted()[0].body), v["id"].(string)) {
		t.Fatalf("event = %s", rcv.accepted()[0].body)
	}
}

func TestUnmatchedEventOnlyToOptedInKeys(t *testing.T) {
	shopRcv := newReceiver(t)
	otherRcv := newReceiver(t)
	y := strings.Replace(testYAML, "{name: shop, key: "+shopKey+", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}",
		"{name: shop, key: "+shopKey+", webhook_secret: "+whsec+", webhook_url: "+shopRcv.srv.URL+", unmatched_events: true}", 1)
	y = strings.Replace(y, "{name: other, key: "+otherKey+"}", "{name: other, key: "+otherKey+", webhook_secret: "+whsec+", webhook_url: "+otherRcv.srv.URL+"}", 1) + allowPrivate
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, st, err := open(Options{Config: cfg, Outbox: OutboxOptions{BaseDelay: 10 * time.Millisecond}}, true)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, m: st.Memory, h: s.Handler(), logs: &syncBuffer{}, now: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.RunOutbox(ctx)
	r := h.signed("twilio", adapters.Inbound{MessageID: "SMunmatched1", From: "+14155550777", To: "+14155550100", Text: "what is this?"})
	h.send(r)
	h.send(r) // a redelivery makes no second event
	eventually(t, "the message.unmatched event", func() bool { return len(shopRcv.accepted()) == 1 })
	time.Sleep(50 * time.Millisecond)
	if len(shopRcv.accepted()) != 1 || otherRcv.calls() != 0 {
		t.Fatalf("shop got %d, other got %d", len(shopRcv.accepted()), otherRcv.calls())
	}
	g := shopRcv.accepted()[0]
	verifyStandard(t, g)
	loadSpec(t).event(t, "message.unmatched", g.body)
	var ev struct {
		Type string
		Data map[string]any
	}
	_ = json.Unmarshal(g.body, &ev)
	if ev.Type != "message.unmatched" || ev.Data["from"] != "+14155550777" || ev.Data["text"] != "what is this?" || ev.Data["message_id"] != "SMunmatched1" {
		t.Fatalf("event = %s", g.body)
	}
	eventually(t, "the event recorded as delivered", func() bool { return h.m.Undelivered() == 0 })
}
