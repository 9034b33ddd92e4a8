package gateway

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// rateLimit is n events per period for each key, burst n: in-process for
// one node (limiter), or in Redis (sharedLimiter) so that a limit holds for
// the whole gateway, not per replica.
type rateLimit interface {
	// take spends one event for key or returns a 429 error with
	// Retry-After (or, when the limit cannot be read, a storage error).
	take(ctx context.Context, key, what string) error
	// charge spends one event for key if one is left, in one atomic step,
	// and reports whether it did: of concurrent charges, no more succeed
	// than there are events left. When the limit cannot be read it returns
	// a storage error, so the caller answers 503 and the provider retries
	// (never "no budget", which would record a message as unmatched).
	charge(ctx context.Context, key string) (bool, error)
	// refund gives back one event charged for key and then not used, up
	// to the burst; a refund that cannot be made is dropped, which only
	// leaves the budget smaller.
	refund(ctx context.Context, key string)
}

// newRateLimit returns the limit of n events per period: shared through
// rdb when it is set, else in-process; none when n is 0.
func newRateLimit(n float64, period time.Duration, name string, rdb redis.UniversalClient) rateLimit {
	if n <= 0 {
		return noLimit{}
	}
	if rdb != nil {
		burst := int(math.Max(1, math.Ceil(n)))
		return &sharedLimiter{rdb: rdb, gcra: redis_rate.NewLimiter(rdb), name: name + ":",
			limit: redis_rate.Limit{Rate: burst, Burst: burst, Period: time.Duration(float64(burst) / n * float64(period))}}
	}
	return newLimiter(n, period)
}

// noLimit is a limit of 0: unlimited.
type noLimit struct{}

// limited reports whether l is a limit at all (not noLimit): charging it
// may cost a call, and may be refused.
func limited(l rateLimit) bool {
	_, none := l.(noLimit)
	return !none
}

func (noLimit) take(context.Context, string, string) error   { return nil }
func (noLimit) charge(context.Context, string) (bool, error) { return true, nil }
func (noLimit) refund(context.Context, string)               {}

// sharedLimiter is a GCRA limit in Redis (go-redis/redis_rate): every
// replica spends from the same budget.
type sharedLimiter struct {
	rdb   redis.UniversalClient
	gcra  *redis_rate.Limiter
	name  string
	limit redis_rate.Limit
}

// spend is one redis_rate call (one script, atomic in Redis): whether an
// event of key was left and spent, or how long until one is.
func (l *sharedLimiter) spend(ctx context.Context, key string) (ok bool, wait time.Duration, err error) {
	res, err := l.gcra.Allow(ctx, l.name+key, l.limit)
	if err != nil {
		return false, 0, errUnavailable
	}
	return res.Allowed > 0, res.RetryAfter, nil
}

func (l *sharedLimiter) take(ctx context.Context, key, what string) error {
	ok, wait, err := l.spend(ctx, key)
	if err != nil || ok {
		return err
	}
	return rateLimited(what, wait)
}

func (l *sharedLimiter) charge(ctx context.Context, key string) (bool, error) {
	ok, _, err := l.spend(ctx, key)
	return ok, err
}

func (l *sharedLimiter) refund(ctx context.Context, key string) {
	interval := l.limit.Period.Seconds() / float64(l.limit.Rate)
	_ = gcraRefund.Run(ctx, l.rdb, []string{gcraKeyPrefix + l.name + key}, interval).Err()
}

// gcraKeyPrefix begins the keys of redis_rate (v10), before the name given
// (limitClient puts the deployment's prefix in its place).
const gcraKeyPrefix = "rate:"

// gcraRefund moves back by one emission interval (ARGV[1], seconds) the
// theoretical arrival time that redis_rate (v10) keeps in KEYS[1]: seconds
// since 2017-01-01 on Redis's clock, the key gone when the bucket is full.
// redis_rate's own AllowN with a cost of -1 drops a refund that makes the
// bucket full, so the last token charged could never be given back.
var gcraRefund = redis.NewScript(`
redis.replicate_commands()
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local new = tat - tonumber(ARGV[1])
if new <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new, 'EX', math.ceil(new - now))
end
return 1
`)

// limiter keeps one token bucket per key: n events per period, burst n.
// A bucket idle for a whole period is full again, so it is forgotten then
// and never sooner: however many keys a flood brings, a key's budget holds
// for its whole period (no bound by count that could evict it early).
type limiter struct {
	mu      sync.Mutex
	every   float64 // tokens a second
	burst   float64
	period  time.Duration
	buckets map[string]*bucket
	peak    int       // most buckets held since the map was last rebuilt
	sweep   time.Time // when idle buckets are next dropped
}

// bucket is one key's tokens as of used, when it was last used.
type bucket struct {
	tokens float64
	used   time.Time
}

// newLimiter returns an in-process limit of n > 0 events per period.
func newLimiter(n float64, period time.Duration) *limiter {
	return &limiter{
		every:   n / period.Seconds(),
		burst:   math.Max(1, math.Ceil(n)),
		period:  period,
		buckets: make(map[string]*bucket),
	}
}

// bucket returns key's bucket refilled up to now; l.mu is held.
func (l *limiter) bucket(key string, now time.Time) *bucket {
	if now.After(l.sweep) {
		l.dropIdle(now)
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, used: now}
		l.buckets[key] = b
		l.peak = max(l.peak, len(l.buckets))
	}
	if now.After(b.used) {
		b.tokens = math.Min(l.burst, b.tokens+l.every*now.Sub(b.used).Seconds())
		b.used = now
	}
	return b
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

// spend takes one token of key, or says how long until one is there.
func (l *limiter) spend(key string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, time.Now())
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.every * float64(time.Second))
}

// take spends one event for key or returns a 429 error with Retry-After.
func (l *limiter) take(_ context.Context, key, what string) error {
	if ok, wait := l.spend(key); !ok {
		return rateLimited(what, wait)
	}
	return nil
}

// rateLimited is the 429 of a limit of what, with Retry-After wait.
func rateLimited(what string, wait time.Duration) error {
	e := errorf(http.StatusTooManyRequests, "rate_limited", "too many %s; retry later", what)
	e.RetryAfter = max(1, int(math.Ceil(wait.Seconds())))
	return e
}

// charge spends one event for key if one is left, under l.mu.
func (l *limiter) charge(_ context.Context, key string) (bool, error) {
	ok, _ := l.spend(key)
	return ok, nil
}

// refund gives back one event to key, up to the burst.
func (l *limiter) refund(_ context.Context, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, time.Now())
	b.tokens = math.Min(l.burst, b.tokens+1)
}
