package gateway

import (
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/time/rate"
)

// limiter keeps one token bucket per key: n events per period, burst n.
// Buckets idle for a period are forgotten, which is when they would be
// full again anyway.
type limiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	buckets *expirable.LRU[string, *rate.Limiter]
}

// newLimiter returns nil (no limit) when n is 0.
func newLimiter(n float64, period time.Duration) *limiter {
	if n <= 0 {
		return nil
	}
	burst := int(math.Max(1, math.Ceil(n)))
	return &limiter{
		every:   rate.Limit(n / period.Seconds()),
		burst:   burst,
		buckets: expirable.NewLRU[string, *rate.Limiter](1<<20, nil, period),
	}
}

func (l *limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(l.every, l.burst)
	}
	l.buckets.Add(key, b) // refresh the idle timer
	return b
}

// take spends one event for key or returns a 429 error with Retry-After.
func (l *limiter) take(key, what string) error {
	if l == nil {
		return nil
	}
	r := l.bucket(key).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		e := errorf(http.StatusTooManyRequests, "rate_limited", "too many %s; retry later", what)
		e.RetryAfter = int(math.Ceil(d.Seconds()))
		return e
	}
	return nil
}

// exhausted reports whether key has no event left, without spending one.
func (l *limiter) exhausted(key string) bool {
	return l != nil && l.bucket(key).Tokens() < 1
}

// spend uses one event for key if one is left.
func (l *limiter) spend(key string) {
	if l != nil {
		l.bucket(key).Allow()
	}
}
