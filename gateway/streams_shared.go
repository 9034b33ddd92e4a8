package gateway

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/redis/go-redis/v9"
)

// Leases of shared stream slots: a holder renews its slots every
// streamRenew; a slot whose holder stopped renewing (a replica killed
// without releasing) frees itself streamLease after the last renewal.
const (
	streamLease = 15 * time.Second
	streamRenew = 5 * time.Second
)

// takeSlot trims the ended leases of KEYS[1], then adds member ARGV[3] with
// a lease of ARGV[2] ms unless the set holds ARGV[1] (> 0) members already.
// Leases are on Redis's clock, so replicas' clocks do not matter.
var takeSlot = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local max = tonumber(ARGV[1])
if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// renewSlots extends the leases of the members ARGV[2..] of KEYS[1] by
// ARGV[1] ms. A member no longer there (its lease ended and was trimmed
// while Redis could not be reached) is added back: its stream is still
// open, so it still counts, even if that puts the set over its limit for a
// while (new streams are refused until enough end). A member released
// while the renewal was on its way is removed again by the renewer.
var renewSlots = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
return 1
`)

// sharedSlots is streamSlots in Redis (store: redis), so a limit holds for
// the whole gateway, not per replica: a sorted set per key,
// <redis_prefix>:limit:<name>:<key>, whose members are the streams holding a slot,
// scored by the end of their lease.
type sharedSlots struct {
	rdb          redis.UniversalClient
	prefix       string
	max          atomic.Int64
	lease, renew time.Duration // streamLease, streamRenew

	mu       sync.Mutex
	held     map[string]map[string]bool // Redis key -> this process's members
	renewing bool
}

var _ streamSlots = (*sharedSlots)(nil)

// newSharedSlots counts in the keys prefix<key>.
func newSharedSlots(rdb redis.UniversalClient, prefix string, max int) *sharedSlots {
	l := &sharedSlots{
		rdb: rdb, prefix: prefix, lease: streamLease, renew: streamRenew,
		held: map[string]map[string]bool{},
	}
	l.max.Store(int64(max))
	return l
}

func (l *sharedSlots) setMax(max int) { l.max.Store(int64(max)) }

func (l *sharedSlots) take(ctx context.Context, key string) (func(), error) {
	rkey, member := l.prefix+key, adapters.RandomHex(12)
	ok, err := takeSlot.Run(ctx, l.rdb, []string{rkey}, l.max.Load(), l.lease.Milliseconds(), member).Int()
	if err != nil {
		// The script may have run before its answer was lost (ctx ended,
		// a timeout): free the slot it may hold now, not at its lease's end.
		go l.remove(rkey, member) //nolint:gosec // G118: the request context may have ended already
		return nil, fmt.Errorf("stream slots: %w", err)
	}
	if ok == 0 {
		return nil, errNoSlot
	}
	l.keep(rkey, member)
	var once sync.Once
	return func() {
		once.Do(func() {
			l.drop(rkey, member)
			l.remove(rkey, member)
		})
	}, nil
}

// remove deletes member's slot from Redis; when that fails its lease ends
// on its own.
func (l *sharedSlots) remove(rkey string, members ...any) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.rdb.ZRem(ctx, rkey, members...).Err()
}

// keep records a held slot for renewal, starting the renewer if it is not
// running.
func (l *sharedSlots) keep(rkey, member string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.held[rkey]
	if m == nil {
		m = map[string]bool{}
		l.held[rkey] = m
	}
	m[member] = true
	if !l.renewing {
		l.renewing = true
		go l.renewLeases()
	}
}

func (l *sharedSlots) drop(rkey, member string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held[rkey], member)
	if len(l.held[rkey]) == 0 {
		delete(l.held, rkey)
	}
}

// renewLeases extends the leases of every slot this process holds, one
// pipeline per renew period, and stops when it holds none.
func (l *sharedSlots) renewLeases() {
	t := time.NewTicker(l.renew)
	defer t.Stop()
	for range t.C {
		batch := l.holding()
		if batch == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.renew)
		pipe := l.rdb.Pipeline()
		for rkey, members := range batch {
			renewSlots.Eval(ctx, pipe, []string{rkey}, append([]any{l.lease.Milliseconds()}, members...)...)
		}
		_, _ = pipe.Exec(ctx) // a failed renewal is retried at the next tick
		cancel()
		for rkey, members := range l.released(batch) {
			l.remove(rkey, members...)
		}
	}
}

// released returns the members of batch no longer held: released while
// their renewal was on its way, which may have added them back.
func (l *sharedSlots) released(batch map[string][]any) map[string][]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out map[string][]any
	for rkey, members := range batch {
		for _, m := range members {
			if !l.held[rkey][m.(string)] {
				if out == nil {
					out = map[string][]any{}
				}
				out[rkey] = append(out[rkey], m)
			}
		}
	}
	return out
}

// holding returns the held slots by Redis key, or nil (and marks the
// renewer stopped) when there are none.
func (l *sharedSlots) holding() map[string][]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.held) == 0 {
		l.renewing = false
		return nil
	}
	out := make(map[string][]any, len(l.held))
	for rkey, members := range l.held {
		for m := range members {
			out[rkey] = append(out[rkey], m)
		}
	}
	return out
}
