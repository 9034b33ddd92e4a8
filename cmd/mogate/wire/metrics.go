package wire

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher/memstore"
	"github.com/mogate/mogate/matcher/redisstore"
)

// storageMetrics are mogate_storage_duration_seconds and
// mogate_storage_errors_total, fed by the store's hooks: the WAL's fsync
// callback (op wal_fsync) or a go-redis hook (op redis).
type storageMetrics struct {
	op       string
	duration *prometheus.HistogramVec
	errs     *prometheus.CounterVec
}

func newStorageMetrics(op string) *storageMetrics {
	m := &storageMetrics{
		op: op,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mogate_storage_duration_seconds", Help: "Storage latency: one WAL write+fsync batch (op wal_fsync) or one Redis call or pipeline (op redis).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"op"}),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_storage_errors_total", Help: "Failed storage operations (WAL write or fsync, Redis call), by op.",
		}, []string{"op"}),
	}
	m.errs.WithLabelValues(op) // present at 0, so that increase() sees the first failure
	return m
}

func (m *storageMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.duration, m.errs}
}

// observe records one storage operation: its latency, and a failure when
// err is set.
func (m *storageMetrics) observe(d time.Duration, err error) {
	m.duration.WithLabelValues(m.op).Observe(d.Seconds())
	if err != nil {
		m.errs.WithLabelValues(m.op).Inc()
	}
}

// walSync is the journal's OnSync.
func (m *storageMetrics) walSync(took time.Duration, err error) { m.observe(took, err) }

// redisTimer is a go-redis hook that records every call's latency and
// failures (a missing key, redis.Nil, is an answer, not a failure).
type redisTimer struct{ m *storageMetrics }

var _ redis.Hook = redisTimer{}

func (redisTimer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t redisTimer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		t.observe(ctx, start, err)
		return err
	}
}

func (t redisTimer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		t.observe(ctx, start, err)
		return err
	}
}

func (t redisTimer) observe(ctx context.Context, start time.Time, err error) {
	if errors.Is(err, redis.Nil) || ctx.Err() != nil {
		err = nil
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isConnErr(rerr) {
		err = nil // the server answered (a script's own error): storage works
	}
	t.m.observe(time.Since(start), err)
}

// isConnErr reports whether a server error means Redis cannot serve writes
// (loading, read-only replica, out of memory, cluster down).
func isConnErr(err redis.Error) bool {
	for _, p := range []string{"LOADING", "READONLY", "OOM", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS", "MISCONF"} {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

// processedIDs is the gauge of the processed message ids and spent nonces
// a memory store remembers: a counter, read in O(1).
func processedIDs(m *memstore.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_processed_ids", Help: "Processed provider message ids and spent Plivo V2 nonces remembered for the retention window (store: memory).",
	}, func() float64 { return float64(m.Remembered()) })
}

// clockSkew is mogate_clock_skew_seconds: how far this process's clock is
// ahead of Redis's TIME, as the store last measured it.
func clockSkew(rs *redisstore.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_clock_skew_seconds",
		Help: "How far this process's clock is ahead of Redis's TIME (negative: behind), measured every 10 s; timestamps, expiry and leases follow Redis.",
	}, func() float64 { return rs.ClockSkew().Seconds() })
}
