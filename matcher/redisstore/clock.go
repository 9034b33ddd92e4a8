package redisstore

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockSyncEvery is how often Run samples Redis's TIME again.
var clockSyncEvery = 10 * time.Second

// SkewWarn is the skew between this process's clock and Redis's TIME
// past which a log line says so.
const SkewWarn = 2 * time.Second

// clockSamples is how many TIME round trips one sync makes; the one with
// the shortest round trip is kept.
const clockSamples = 3

// clock is Redis's time as this process reads it: the local clock (the
// Now of Options) minus the offset last measured against TIME. Every
// replica then stamps, expires and leases on the same clock, whatever its
// own clock says.
type clock struct {
	local  func() time.Time
	offset atomic.Int64 // local − Redis, ns
	off    atomic.Bool  // the last sync logged a skew past SkewWarn
}

// Now is the store's clock: Redis's TIME, read through the offset to the
// local clock sampled at Open and every 10 s while Run runs (or the local
// clock as is with Options.LocalClock). Expiry, expires_at, event leases
// and budgets follow it; the outbox signs events with it.
func (s *Store) Now() time.Time {
	return s.clk.local().Add(-time.Duration(s.clk.offset.Load()))
}

// ClockSkew is how far the local clock is ahead of Redis's TIME (behind
// when negative), as last measured; 0 with Options.LocalClock.
func (s *Store) ClockSkew() time.Duration { return time.Duration(s.clk.offset.Load()) }

// timeClient is the server whose TIME every replica reads: the one server,
// or the primary of P:tags's slot in a cluster.
func (s *Store) timeClient(ctx context.Context) (redis.Cmdable, error) {
	if s.cluster == nil {
		return s.rdb, nil
	}
	return s.cluster.MasterForKey(ctx, s.k.tags())
}

// syncClock measures the offset of the local clock to Redis's TIME, from
// the sample with the shortest round trip, the server's time taken as the
// local time half-way through it; a skew past SkewWarn is logged once, and
// its end once.
func (s *Store) syncClock(ctx context.Context) error {
	if s.opt.LocalClock {
		return nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	c, err := s.timeClient(ctx)
	if err != nil {
		return unavailable(err)
	}
	best, offset := time.Duration(math.MaxInt64), time.Duration(0)
	for range clockSamples {
		local, start := s.clk.local(), time.Now()
		server, err := c.Time(ctx).Result()
		rtt := time.Since(start)
		if err != nil {
			return unavailable(err)
		}
		if rtt < best {
			best, offset = rtt, local.Add(rtt/2).Sub(server)
		}
	}
	s.clk.offset.Store(int64(offset))
	switch far := offset.Abs() > SkewWarn; {
	case far && !s.clk.off.Swap(true):
		s.log.Warn("clock: this process's clock is off Redis's TIME; timestamps, expiry and leases follow Redis",
			"skew_seconds", roundSeconds(offset), "rtt", best.Round(time.Microsecond))
	case !far && s.clk.off.Swap(false):
		s.log.Info("clock: this process's clock is within 2s of Redis's TIME again", "skew_seconds", roundSeconds(offset))
	}
	return nil
}

func roundSeconds(d time.Duration) float64 { return math.Round(d.Seconds()*1000) / 1000 }
