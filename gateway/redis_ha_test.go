package gateway

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestRedisStallAnswers503Fast: with Redis frozen (it accepts connections
// and answers nothing), webhooks and the API answer 503 within 5 s, and
// /readyz says Redis is at fault without "restart to recover" (false with
// Redis: the gateway recovers once Redis does).
func TestRedisStallAnswers503Fast(t *testing.T) {
	srv := redistest.Start(t)
	h := redisHarness(t, srv.URL(), "")
	v := h.mustCreate(`{"number": "+14155550123"}`)
	srv.Stop()
	defer srv.Cont()
	for _, tc := range []struct {
		name string
		do   func() int
	}{
		{"webhook", func() int {
			return h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: v["to"].(string), Text: v["code"].(string)})).Code
		}},
		{"create", func() int { code, _ := h.create(shopKey, `{"number": "+14155550124"}`, nil); return code }},
		{"get", func() int { return h.do("GET", "/v1/verifications/"+v["id"].(string), shopKey, nil, nil).Code }},
		{"cancel", func() int {
			return h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil).Code
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code := tc.do()
			if took := time.Since(start); code != 503 || took >= 5*time.Second {
				t.Fatalf("%s with Redis frozen = %d after %s, want 503 within 5s", tc.name, code, took)
			}
		})
	}
	w := h.do("GET", "/readyz", "", nil, nil)
	if w.Code != 503 || strings.Contains(w.Body.String(), "restart") || !strings.Contains(w.Body.String(), "Redis") {
		t.Fatalf("readyz with Redis frozen = %d %s", w.Code, w.Body)
	}
	srv.Cont()
	deadline := time.Now().Add(10 * time.Second)
	for h.do("GET", "/readyz", "", nil, nil).Code != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready again after Redis came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRedisReadyzNotPrimary: a gateway whose Redis is made a replica (as
// Sentinel does to an old primary that comes back) is not ready.
func TestRedisReadyzNotPrimary(t *testing.T) {
	other := redistest.Start(t)
	srv := redistest.Start(t)
	h := redisHarness(t, srv.URL(), "")
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 200 {
		t.Fatalf("readyz = %d %s", w.Code, w.Body)
	}
	if err := srv.Client().SlaveOf(context.Background(), "127.0.0.1", fmt.Sprint(other.Port)).Err(); err != nil {
		t.Fatal(err)
	}
	srv.WaitLinkUp()
	if w := h.do("GET", "/readyz", "", nil, nil); w.Code != 503 {
		t.Fatalf("readyz on a replica = %d %s", w.Code, w.Body)
	}
	if !strings.Contains(h.logs.String(), "not a primary") {
		t.Fatalf("no log line says why: %s", h.logs)
	}
}

// TestRedisUnsafeNodesMetric: mogate_redis_unsafe_nodes counts a replica
// whose settings can lose acknowledged writes (accepted by redis_unsafe).
func TestRedisUnsafeNodesMetric(t *testing.T) {
	primary := redistest.Start(t)
	redistest.StartReplica(t, primary, "--no-appendfsync-on-rewrite", "yes")
	h := redisHarness(t, primary.URL(), "redis_unsafe: true\n")
	w := h.do("GET", "/metrics", "", nil, nil)
	if !strings.Contains(w.Body.String(), "\nmogate_redis_unsafe_nodes 1\n") {
		t.Fatalf("metrics lack mogate_redis_unsafe_nodes 1:\n%s", w.Body)
	}
	if !strings.Contains(h.logs.String(), "no-appendfsync-on-rewrite") {
		t.Fatalf("no log line names the setting: %s", h.logs)
	}
}

// TestRedisWaitReplicas503: with redis_wait_replicas 1 a create is 201
// while the replica keeps up, and 503 (never 201) while it does not
// acknowledge within redis_wait_timeout.
func TestRedisWaitReplicas503(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.StartReplica(t, primary)
	h := redisHarness(t, primary.URL(), "redis_wait_replicas: 1\nredis_wait_timeout: 1s\n")
	if code, body := h.create(shopKey, `{"number": "+14155550123"}`, nil); code != 201 {
		t.Fatalf("create = %d %s", code, body)
	}
	replica.Stop()
	defer replica.Cont()
	if code, body := h.create(shopKey, `{"number": "+14155550124"}`, nil); code != 503 {
		t.Fatalf("create with the replica frozen = %d %s", code, body)
	}
}
