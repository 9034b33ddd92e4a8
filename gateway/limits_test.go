package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher/redisstore/redistest"

	"github.com/mogate/mogate/adapters"
)

// TestLimiterOutlivesFlood: a key's spent budget holds for its whole
// period however many other keys arrive meanwhile (more than the 2^20 a
// count-bounded cache kept), and a bucket idle for a period is dropped.
func TestLimiterOutlivesFlood(t *testing.T) {
	ctx := context.Background()
	l := newLimiter(1, time.Hour)
	if err := l.take(ctx, "victim", "creates"); err != nil {
		t.Fatal(err)
	}
	for i := range 1<<20 + 1000 {
		_, _ = l.charge(ctx, strconv.Itoa(i))
	}
	var e *apiError
	if err := l.take(ctx, "victim", "creates"); !errors.As(err, &e) || e.Status != http.StatusTooManyRequests {
		t.Fatalf("after the flood the spent key takes again: %v", err)
	}
	// A period later every idle bucket goes, and the map is rebuilt small.
	l.mu.Lock()
	for _, b := range l.buckets {
		b.used = b.used.Add(-time.Hour)
	}
	l.sweep = time.Time{}
	l.mu.Unlock()
	_, _ = l.charge(ctx, "fresh")
	if n := len(l.buckets); n != 1 || l.peak != 1 {
		t.Fatalf("after a period: %d buckets (peak %d), want 1", n, l.peak)
	}
}

// TestChargeAndRefund: of concurrent charges no more succeed than the
// budget holds; a refund gives one back, and never raises a budget past
// its burst; in process and in Redis.
func TestChargeAndRefund(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit func(t *testing.T) rateLimit
	}{
		{"in-process", func(*testing.T) rateLimit { return newRateLimit(10, time.Hour, "t", nil) }},
		{"redis", func(t *testing.T) rateLimit { return newRateLimit(10, time.Hour, "t", redistest.Start(t).Client()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			l := tc.limit(t)
			var charged atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 40 {
				wg.Go(func() {
					<-start
					if ok, _ := l.charge(ctx, "s"); ok {
						charged.Add(1)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := charged.Load(); n != 10 {
				t.Fatalf("%d of 40 concurrent charges succeeded on a budget of 10", n)
			}
			l.refund(ctx, "s")
			if ok, _ := l.charge(ctx, "s"); !ok {
				t.Fatal("a refunded event cannot be charged")
			}
			if ok, _ := l.charge(ctx, "s"); ok {
				t.Fatal("a refund did not give back exactly one")
			}
			for range 5 {
				l.refund(ctx, "full")
			}
			n := 0
			for ok, _ := l.charge(ctx, "full"); ok; ok, _ = l.charge(ctx, "full") {
				n++
			}
			if n != 10 {
				t.Fatalf("a full budget refunded 5 times charges %d, want 10", n)
			}
		})
	}
}

// brokenLimit is a limit that cannot be read (Redis unreachable).
type brokenLimit struct{ noLimit }

func (brokenLimit) charge(context.Context, string) (bool, error) { return false, errUnavailable }

// TestBudgetUnreadableIs503: when a sender's budget cannot be read, a
// webhook whose message needs it (a capture code) answers 503 and records
// nothing, so the provider's retry can still verify; it is never taken as
// "no budget left" (which would record the message as unmatched and answer
// 200: a lost verification). A message its sender's own session takes
// needs no budget: it verifies all the same.
func TestBudgetUnreadableIs503(t *testing.T) {
	h := newHarness(t, testYAML)
	capture := h.mustCreate(`{"to": "+14155550100"}`)
	own := h.mustCreate(`{"number": "+14155550123"}`)
	msg := adapters.Inbound{MessageID: "SMbudget", From: "+14155550124", To: capture["to"].(string), Text: capture["code"].(string)}
	rt := h.s.live()
	saved := rt.unmatchedLimit
	rt.unmatchedLimit = brokenLimit{}
	if w := h.send(h.signed("twilio", msg)); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("webhook with the budget unreadable = %d %s, want 503", w.Code, w.Body)
	}
	if got := h.get(capture["id"].(string)); got["status"] != "pending" {
		t.Fatalf("after the 503: %v, want pending", got["status"])
	}
	ownMsg := adapters.Inbound{MessageID: "SMown", From: "+14155550123", To: own["to"].(string), Text: own["code"].(string)}
	if w := h.send(h.signed("twilio", ownMsg)); w.Code != http.StatusOK {
		t.Fatalf("own session's code with the budget unreadable = %d %s, want 200", w.Code, w.Body)
	}
	if got := h.get(own["id"].(string)); got["status"] != "verified" {
		t.Fatalf("own session with the budget unreadable: %v, want verified", got["status"])
	}
	rt.unmatchedLimit = saved
	if w := h.send(h.signed("twilio", msg)); w.Code != http.StatusOK {
		t.Fatalf("the provider's retry = %d %s", w.Code, w.Body)
	}
	if got := h.get(capture["id"].(string)); got["status"] != "verified" {
		t.Fatalf("after the retry: %v, want verified", got["status"])
	}
}
