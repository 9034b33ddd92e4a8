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
		l.charge(ctx, strconv.Itoa(i))
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
	l.charge(ctx, "fresh")
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
					if l.charge(ctx, "s") {
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
			if !l.charge(ctx, "s") || l.charge(ctx, "s") {
				t.Fatal("a refund did not give back exactly one")
			}
			for range 5 {
				l.refund(ctx, "full")
			}
			n := 0
			for l.charge(ctx, "full") {
				n++
			}
			if n != 10 {
				t.Fatalf("a full budget refunded 5 times charges %d, want 10", n)
			}
		})
	}
}
