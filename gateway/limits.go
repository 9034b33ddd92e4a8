package gateway

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"golang.org/x/time/rate"
)

// rateLimit is n events per period for each key, burst n: in-process for
// one node (limiter), or in Redis (sharedLimiter) so that a limit holds for
// the whole gateway, not per replica.
type rateLimit interface {
	// take spends one event for key or returns a 429 error with
	// Retry-After (or, when the limit cannot be read, a storage error).
	take(ctx context.Context, key, what string) error
	// exhausted reports whether key has no event left, without spending
	// one; when it cannot tell it says true (fail closed).
	exhausted(ctx context.Context, key string) bool
	// spend uses one event for key if one is left.
	spend(ctx context.Context, key string)
}

// newRateLimit returns the limit of n events per period: shared through
// rdb when it is set, else in-process; none when n is 0.
func newRateLimit(n float64, period time.Duration, name string, rdb *redis_rate.Limiter) rateLimit {
	if n <= 0 {
		return noLimit{}
	}
	if rdb != nil {
		burst := int(math.Max(1, math.Ceil(n)))
		return &sharedLimiter{rdb: rdb, name: name + ":",
			limit: redis_rate.Limit{Rate: burst, Burst: burst, Period: time.Duration(float64(burst) / n * float64(period))}}
	}
	return newLimiter(n, period)
}

// noLimit is a limit of 0: unlimited.
type noLimit struct{}

func (noLimit) take(context.Context, string, string) error { return nil }
func (noLimit) exhausted(context.Context, string) bool     { return false }
func (noLimit) spend(context.Context, string)              {}

// sharedLimiter is a GCRA limit in Redis (go-redis/redis_rate): every
// replica spends from the same budget.
type sharedLimiter struct {
	rdb   *redis_rate.Limiter
	name  string
	limit redis_rate.Limit
}

func (l *sharedLimiter) take(ctx context.Context, key, what string) error {
	res, err := l.rdb.Allow(ctx, l.name+key, l.limit)
	if err != nil {
		return errUnavailable
	}
	if res.Allowed == 0 {
		e := errorf(http.StatusTooManyRequests, "rate_limited", "too many %s; retry later", what)
		e.RetryAfter = max(1, int(math.Ceil(res.RetryAfter.Seconds())))
		return e
	}
	return nil
}

func (l *sharedLimiter) exhausted(ctx context.Context, key string) bool {
	res, err := l.rdb.AllowN(ctx, l.name+key, l.limit, 0)
	return err != nil || res.Remaining < 1
}

func (l *sharedLimiter) spend(ctx context.Context, key string) {
	_, _ = l.rdb.Allow(ctx, l.name+key, l.limit)
}

// limiter keeps one token bucket per key: n events per period, burst n.
// A bucket idle for a whole period is full again, so it is forgotten then
// and never sooner: however many keys a flood brings, a key's budget holds
// for its whole period (no bound by count that could evict it early).
type limiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	period  time.Duration
	buckets map[string]*bucket
	peak    int       // most buckets held since the map was last rebuilt
	sweep   time.Time // when idle buckets are next dropped
}

// bucket is one key's token bucket and when it was last used.
type bucket struct {
	*rate.Limiter
	used time.Time
}

// newLimiter returns an in-process limit of n > 0 events per period.
func newLimiter(n float64, period time.Duration) *limiter {
	return &limiter{
		every:   rate.Limit(n / period.Seconds()),
		burst:   int(math.Max(1, math.Ceil(n))),
		period:  period,
		buckets: make(map[string]*bucket),
	}
}

func (l *limiter) bucket(key string) *rate.Limiter {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.After(l.sweep) {
		l.dropIdle(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{Limiter: rate.NewLimiter(l.every, l.burst)}
		l.buckets[key] = b
		l.peak = max(l.peak, len(l.buckets))
	}
	b.used = now
	return b.Limiter
}

// dropIdle forgets the buckets idle for a period, at most once a period
// (O(1) amortised per call), and copies the map into a smaller one when a
// flood has passed, since a Go map never shrinks by itself.
func (l *limiter) dropIdle(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.used) >= l.period {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.peak/4 {
		m := make(map[string]*bucket, len(l.buckets))
		for k, b := range l.buckets {
			m[k] = b
		}
		l.buckets, l.peak = m, len(m)
	}
	l.sweep = now.Add(l.period)
}

// take spends one event for key or returns a 429 error with Retry-After.
func (l *limiter) take(_ context.Context, key, what string) error {
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
func (l *limiter) exhausted(_ context.Context, key string) bool {
	return l.bucket(key).Tokens() < 1
}

// spend uses one event for key if one is left.
func (l *limiter) spend(_ context.Context, key string) {
	l.bucket(key).Allow()
}
