package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/redis/go-redis/v9"
)

// redisHarness is a gateway on store: redis, on a private redis-server.
func redisHarness(t *testing.T, url, extra string) *harness {
	t.Helper()
	return redisHarnessFrom(t, testYAML, url, extra)
}

// redisHarnessFrom is redisHarness on the configuration base.
func redisHarnessFrom(t *testing.T, base, url, extra string) *harness {
	t.Helper()
	return storeHarness(t, base+"store: redis\nredis_url: "+url+"\n"+extra)
}

// storeHarness is a gateway on the store its configuration names (not the
// test's in-memory one), closed when the test ends.
func storeHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, _, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Now: h.clock}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.SetReady(true)
	h.s, h.h = s, s.Handler()
	return h
}

// TestRedisGateway: two gateways on one Redis are one gateway: a create on
// one verifies through a webhook on the other, and the create limits hold
// for both together (GCRA in Redis), not per replica.
func TestRedisGateway(t *testing.T) {
	srv := redistest.Start(t)
	a := redisHarness(t, srv.URL(), "")
	b := redisHarness(t, srv.URL(), "")
	v := a.mustCreate(`{"number": "+14155550123"}`)
	if w := b.send(b.signed("twilio", adapters.Inbound{From: "+14155550123", To: v["to"].(string), Text: v["code"].(string)})); w.Code != 200 {
		t.Fatalf("webhook on b = %d %s", w.Code, w.Body)
	}
	if got := a.get(v["id"].(string)); got["status"] != "verified" || got["verified_number"] != "+14155550123" {
		t.Fatalf("read on a: %v", got)
	}
	// Another key's session stays invisible across replicas too.
	if w := b.do("GET", "/v1/verifications/"+v["id"].(string), otherKey, nil, nil); w.Code != 404 {
		t.Fatalf("other key on b = %d", w.Code)
	}
	if w := a.do("GET", "/readyz", "", nil, nil); w.Code != 200 {
		t.Fatalf("readyz = %d %s", w.Code, w.Body)
	}
}

// TestRedisGatewayLimitsAcrossReplicas: creates_per_number_per_hour spent
// on two replicas counts once.
func TestRedisGatewayLimitsAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a := redisHarness(t, srv.URL(), "")
	b := redisHarness(t, srv.URL(), "")
	for _, h := range []*harness{a, b} {
		h.s.live().numberLimit = newRateLimit(3, time.Hour, "creates-per-key-number", h.s.sharedRate())
	}
	var codes []int
	for i := range 4 {
		h := a
		if i%2 == 1 {
			h = b
		}
		code, _ := h.create(shopKey, `{"number": "+14155550199"}`, nil)
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[201 201 201 429]" {
		t.Fatalf("codes across replicas = %v", codes)
	}
}

// TestRedisUnsafeRefused: a Redis that can lose acknowledged writes is
// refused at start, naming the setting, unless redis_unsafe.
func TestRedisUnsafeRefused(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec")
	cfg, err := config.Parse([]byte(testYAML+"store: redis\nredis_url: "+srv.URL()+"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := open(Options{Config: cfg}, false); err == nil || !strings.Contains(err.Error(), "appendfsync") {
		t.Fatalf("unsafe Redis = %v", err)
	}
	cfg.RedisUnsafe = true
	s, _, err := open(Options{Config: cfg}, false)
	if err != nil {
		t.Fatalf("with redis_unsafe: %v", err)
	}
	_ = s.Close()
}

// TestRedisDownReadsAre503: while Redis is down a read answers 503, never
// 404: the session may well exist, and a client must not give it up.
func TestRedisDownReadsAre503(t *testing.T) {
	srv := redistest.Start(t)
	h := redisHarness(t, srv.URL(), "")
	v := h.mustCreate(`{"number": "+14155550123"}`)
	page, _ := url.Parse(v["ui"].(map[string]any)["page_url"].(string))
	srv.Kill()
	for _, path := range []string{
		"/v1/verifications/" + v["id"].(string),
		"/v1/verifications/" + v["id"].(string) + "?wait=1s",
		"/v1/verifications/" + v["id"].(string) + "/qr.png",
		page.Path,
		page.Path + "/qr.png",
	} {
		key := shopKey
		if !strings.HasPrefix(path, "/v1/verifications/") {
			key = ""
		}
		if w := h.do("GET", path, key, nil, nil); w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Errorf("GET %s with Redis down = %d %s", path, w.Code, w.Body)
		}
	}
	if w := h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil); w.Code != 503 {
		t.Errorf("cancel with Redis down = %d %s", w.Code, w.Body)
	}
}

// TestRedisStorageMetrics: every Redis call is timed, and calls that fail
// because Redis is gone are counted as storage errors.
func TestRedisStorageMetrics(t *testing.T) {
	srv := redistest.Start(t)
	h := redisHarness(t, srv.URL(), "")
	h.mustCreate(`{"number": "+14155550123"}`)
	scrape := h.do("GET", "/metrics", "", nil, nil).Body.String()
	if !strings.Contains(scrape, `mogate_storage_duration_seconds_count{op="redis"}`) ||
		!strings.Contains(scrape, `mogate_storage_errors_total{op="redis"} 0`) {
		t.Fatalf("no Redis timing, or errors while Redis works:\n%s", scrape)
	}
	srv.Kill()
	if code, _ := h.create(shopKey, `{"number": "+14155550124"}`, nil); code != 503 {
		t.Fatalf("create without Redis = %d", code)
	}
	if scrape := h.do("GET", "/metrics", "", nil, nil).Body.String(); strings.Contains(scrape, `mogate_storage_errors_total{op="redis"} 0`) {
		t.Fatal("failed Redis calls were not counted")
	}
}

// TestCaptureGuessesAcrossNumbers: a sender's capture guesses are one
// budget across receiving numbers on every store (store: redis counts them
// per (sender, receiving number) in the match and the gateway per sender
// before it), so a pool of N numbers does not give a sender N budgets.
func TestCaptureGuessesAcrossNumbers(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5", "unmatched_per_sender_per_hour: 0\n  capture_guesses_per_sender_per_hour: 3", 1)
		checkCaptureGuessesAcrossNumbers(t, st.harness(t, y))
	})
}

func checkCaptureGuessesAcrossNumbers(t *testing.T, h *harness) {
	t.Helper()
	const guesser = "+33698765432"
	us := h.mustCreate(`{"to": "+14155550100"}`)
	fr := h.mustCreate(`{"to": "+33757000000"}`)
	for i, g := range []struct{ provider, to string }{{"twilio", "+14155550100"}, {"twilio", "+14155550100"}, {"plivo", "+33757000000"}} {
		if w := h.send(h.signed(g.provider, adapters.Inbound{From: guesser, To: g.to, Text: "000000"})); w.Code != 200 {
			t.Fatalf("guess %d = %d %s", i, w.Code, w.Body)
		}
	}
	// Three guesses spent over two numbers: the right code on the second
	// number (one guess there so far) is refused.
	h.send(h.signed("plivo", adapters.Inbound{From: guesser, To: "+33757000000", Text: fr["code"].(string)}))
	if got := h.get(fr["id"].(string)); got["status"] != "pending" {
		t.Fatalf("4th guess across numbers verified: %v", got)
	}
	if got := h.get(us["id"].(string)); got["status"] != "pending" {
		t.Fatalf("us session = %v", got)
	}
	h.send(h.signed("plivo", adapters.Inbound{From: "+33611111111", To: "+33757000000", Text: fr["code"].(string)}))
	if got := h.get(fr["id"].(string)); got["status"] != "verified" {
		t.Fatalf("another sender blocked: %v", got)
	}
}

// redisCalls counts, through a go-redis hook, the ingest function calls
// and the sender-budget scripts (charges and refunds) a client sends, and
// its round trips: commands sent alone, pipelines.
type redisCalls struct {
	mu               sync.Mutex
	ingests, budgets int
	alone, pipes     int
}

func (c *redisCalls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.mu.Lock()
		c.alone++
		c.mu.Unlock()
		c.count(cmd)
		return next(ctx, cmd)
	}
}

func (c *redisCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.mu.Lock()
		c.pipes++
		c.mu.Unlock()
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *redisCalls) count(cmd redis.Cmder) {
	args := fmt.Sprint(cmd.Args()...)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch cmd.Name() {
	case "fcall":
		if strings.HasSuffix(fmt.Sprint(cmd.Args()[1]), "_ingest") {
			c.ingests++
		}
	case "eval", "evalsha":
		if strings.Contains(args, "per-sender") {
			c.budgets++
		}
	}
}

func (c *redisCalls) take() (ingests, budgets int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ingests, budgets = c.ingests, c.budgets
	c.ingests, c.budgets = 0, 0
	return ingests, budgets
}

// TestRedisOwnMatchOneCall: with the default per-sender budgets, the code
// of the sender's own session costs Redis one call, the ingest function,
// and no budget script (before, it charged both budgets and refunded
// them: five round trips); a redelivery too. A capture code is charged.
func TestRedisOwnMatchOneCall(t *testing.T) {
	srv := redistest.Start(t)
	d := config.Default().Limits
	y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5", fmt.Sprintf("unmatched_per_sender_per_hour: %d\n  capture_guesses_per_sender_per_hour: %d",
		d.UnmatchedPerSenderPerHour, d.CaptureGuessesPerSenderPerHour), 1)
	h := redisHarnessFrom(t, y, srv.URL(), "")
	own := h.mustCreate(`{"number": "+14155550123", "to": "+14155550100"}`)
	capture := h.mustCreate(`{"to": "+14155550100"}`)
	calls := &redisCalls{}
	h.s.shared.Client.AddHook(calls)
	msg := h.signed("twilio", adapters.Inbound{MessageID: "SMown", From: "+14155550123", To: "+14155550100", Text: own["code"].(string)})
	for _, what := range []string{"own code", "its redelivery"} {
		if w := h.send(msg); w.Code != 200 {
			t.Fatalf("%s = %d %s", what, w.Code, w.Body)
		}
		if ingests, budgets := calls.take(); ingests != 1 || budgets != 0 {
			t.Fatalf("%s: %d ingest calls and %d budget scripts, want 1 and 0", what, ingests, budgets)
		}
	}
	if got := h.get(own["id"].(string)); got["status"] != "verified" {
		t.Fatalf("own session = %v", got)
	}
	if w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550124", To: "+14155550100", Text: capture["code"].(string)})); w.Code != 200 {
		t.Fatalf("capture code = %d %s", w.Code, w.Body)
	}
	// Two charges and the unmatched one's refund, the first use of a
	// script as EVALSHA and then EVAL.
	if ingests, budgets := calls.take(); ingests != 2 || budgets < 3 {
		t.Fatalf("capture code: %d ingest calls and %d budget scripts, want 2 and at least 3", ingests, budgets)
	}
	if got := h.get(capture["id"].(string)); got["status"] != "verified" {
		t.Fatalf("capture session = %v", got)
	}
}

// TestSharedGuardOneRoundTrip: the guard in the shared Redis answers a
// claim's event ids in one round trip (one SET NX GET each, pipelined),
// each id first once across calls; an id it cannot tell about counts.
func TestSharedGuardOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rdb.Close()
	ctx, now := context.Background(), time.Now()
	if err := rdb.Ping(ctx).Err(); err != nil { // the connection's set-up is no claim's
		t.Fatal(err)
	}
	rt := &redisCalls{}
	rdb.AddHook(rt)
	g := sharedOnce{rdb: rdb, prefix: "t:observed:", ttl: time.Hour}
	check := func(ids []string, want ...bool) {
		t.Helper()
		first := make([]bool, len(ids))
		if err := g.firsts(ctx, ids, now, first); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(first) != fmt.Sprint(want) {
			t.Fatalf("firsts(%v) = %v, want %v", ids, first, want)
		}
	}
	check([]string{"evt_1", "evt_2", "evt_3"}, true, true, true)
	check([]string{"evt_2", "evt_4"}, false, true)
	if rt.alone != 0 || rt.pipes != 2 {
		t.Fatalf("%d commands alone and %d pipelines for two claims, want 0 and 2", rt.alone, rt.pipes)
	}
	if ttl := srv.Client().TTL(ctx, "t:observed:evt_4").Val(); ttl <= 59*time.Minute {
		t.Fatalf("an observed id expires in %v, want the event's lifetime (1h)", ttl)
	}
	// A command sent again after a broken connection finds its own token:
	// first still; an older build's "1" is another replica's observation.
	srv.Client().Set(ctx, "t:observed:evt_5", "tok5", time.Hour)
	srv.Client().Set(ctx, "t:observed:evt_6", "1", time.Hour)
	first := make([]bool, 3)
	if err := g.firstsWith(ctx, []string{"evt_5", "evt_6", "evt_7"}, "tok5", first); err != nil || fmt.Sprint(first) != "[true false true]" {
		t.Fatalf("firstsWith = %v, %v; want [true false true]", first, err)
	}
	// Redis gone: an error, and every event counted rather than never.
	srv.Kill()
	first = make([]bool, 2)
	if err := g.firsts(ctx, []string{"evt_8", "evt_9"}, now, first); err == nil || fmt.Sprint(first) != "[true true]" {
		t.Fatalf("firsts with Redis gone = %v, %v; want an error and [true true]", first, err)
	}
}
