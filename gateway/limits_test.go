package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
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
		l.bucket(strconv.Itoa(i))
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
	l.bucket("fresh")
	if n := len(l.buckets); n != 1 || l.peak != 1 {
		t.Fatalf("after a period: %d buckets (peak %d), want 1", n, l.peak)
	}
}
