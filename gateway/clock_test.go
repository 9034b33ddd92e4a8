package gateway

import (
	"bufio"
	"context"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// skewedRedisHarness is a gateway on store: redis whose clock is off by
// skew, with its outbox running. Its harness clock, which signs the
// providers' webhooks, is the right time.
func skewedRedisHarness(t *testing.T, base, url string, skew time.Duration) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(base+"store: redis\nredis_url: "+url+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, _, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Now: func() time.Time { return time.Now().Add(skew) }}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.RunOutbox(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; _ = s.Close() })
	s.SetReady(true)
	h.s, h.h = s, s.Handler()
	return h
}

func expiresAt(t *testing.T, v map[string]any) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, v["expires_at"].(string))
	if err != nil {
		t.Fatalf("expires_at of %v: %v", v, err)
	}
	return at
}

// metricValue is the value of an unlabelled metric on h's /metrics.
func metricValue(t *testing.T, h *harness, name string) (float64, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(h.do("GET", "/metrics", "", nil, nil).Body.String()))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestGatewayOnRedisClock: a replica whose clock runs 15 min fast reads
// another's 10-minute session as pending with the same expires_at, gives
// its own sessions expires_at on Redis's time, accepts a provider's
// timestamped webhook signed now, signs the events it sends with the
// right time, and says how far off it is in a metric and a log line.
func TestGatewayOnRedisClock(t *testing.T) {
	srv := redistest.Start(t)
	rcv := newReceiver(t)
	y := strings.Replace(testYAML, "{name: shop, key: "+shopKey+", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}",
		"{name: shop, key: "+shopKey+", webhook_secret: "+whsec+", webhook_url: "+rcv.srv.URL+"/hooks}", 1) + allowPrivate
	normal := redisHarnessFrom(t, y, srv.URL(), "")
	fast := skewedRedisHarness(t, y, srv.URL(), 15*time.Minute)

	v := normal.mustCreate(`{"number": "+14155550123", "ttl_seconds": 600}`)
	if got := fast.get(v["id"].(string)); got["status"] != "pending" || !expiresAt(t, got).Equal(expiresAt(t, v)) {
		t.Fatalf("fast reads %v, want pending expiring at %v", got, v["expires_at"])
	}
	own := fast.mustCreate(`{"number": "+447400123456", "ttl_seconds": 600}`)
	if at, want := expiresAt(t, own), time.Now().Add(10*time.Minute); at.Sub(want).Abs() > 5*time.Second {
		t.Errorf("fast's session expires at %v, want about %v", at, want)
	}
	if w := fast.send(fast.signed("vonage", adapters.Inbound{From: "+447400123456", To: own["to"].(string), Text: own["code"].(string)})); w.Code != 200 {
		t.Fatalf("vonage webhook signed now, on fast = %d %s", w.Code, w.Body)
	}
	if w := normal.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil); w.Code != 200 {
		t.Fatalf("cancel = %d %s", w.Code, w.Body)
	}
	eventually(t, "both events delivered by fast", func() bool { return len(rcv.accepted()) == 2 })
	for _, g := range rcv.accepted() {
		ts, _ := strconv.ParseInt(g.header.Get("webhook-timestamp"), 10, 64)
		if d := time.Since(time.Unix(ts, 0)); d.Abs() > 5*time.Second {
			t.Errorf("webhook-timestamp %d is %v off the time", ts, d)
		}
	}

	if skew, ok := metricValue(t, fast, "mogate_clock_skew_seconds"); !ok || skew < 899 || skew > 901 {
		t.Errorf("fast's mogate_clock_skew_seconds = %v (present %v), want about 900", skew, ok)
	}
	if skew, ok := metricValue(t, normal, "mogate_clock_skew_seconds"); !ok || skew < -1 || skew > 1 {
		t.Errorf("normal's mogate_clock_skew_seconds = %v (present %v), want about 0", skew, ok)
	}
	m := regexp.MustCompile(`"level":"WARN".*"skew_seconds":([0-9.]+)`).FindStringSubmatch(fast.logs.String())
	if m == nil || strings.Contains(normal.logs.String(), "skew_seconds") {
		t.Fatalf("the skew is not logged by fast alone:\nfast: %s\nnormal: %s", fast.logs, normal.logs)
	}
	if skew, _ := strconv.ParseFloat(m[1], 64); skew < 899 || skew > 901 {
		t.Errorf("fast logs skew_seconds %s, want about 900", m[1])
	}
}
