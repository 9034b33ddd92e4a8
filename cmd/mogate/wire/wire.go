// Package wire is mogate's composition root: it opens the store a
// configuration names (memory, journaled under data_dir, or Redis) and
// builds what is specific to it — its metrics, its latency hooks, the
// start-up line that says where sessions live — into a backend.Backend
// that gateway.New takes. cmd/mogate and the gateway's tests build their
// servers through Open, so both run the store the same way.
package wire

import (
	"context"
	"log/slog"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway/backend"
	"github.com/mogate/mogate/matcher/memstore"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/wal"
)

// Options tune Open.
type Options struct {
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// InMemory keeps sessions of store: memory in memory only, for tests;
	// otherwise they are journaled under cfg.DataDir (snapshot and wal/).
	// store: redis ignores it.
	InMemory bool
	// EventMaxAge is how long an undelivered event is worth delivering
	// (the outbox's MaxAge); 24h when 0.
	EventMaxAge time.Duration
}

// Store is an opened store: the Backend the gateway takes, and the
// concrete store behind it for the caller that opened it (tests, the
// benchmarks). Exactly one of Memory and Redis is set.
type Store struct {
	backend.Backend
	Memory *memstore.Store   // store: memory
	Redis  *redisstore.Store // store: redis
}

// Open opens the store cfg names, a validated configuration. Closing it is
// the gateway's (Server.Close), or the caller's when it builds no server:
// Backend.Store.Close.
func Open(cfg config.Config, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if cfg.Store == "redis" {
		return openRedis(cfg, o)
	}
	return openMemory(cfg, o)
}

// openMemory opens store: memory, journaled under cfg.DataDir unless
// o.InMemory. Its constructor is called here and nowhere else.
func openMemory(cfg config.Config, o Options) (*Store, error) {
	mo := memstore.Options{
		Now: o.Now, MaxAttempts: cfg.Verification.MaxAttempts,
		CodeLength: cfg.Verification.CodeLength, Retention: cfg.Retention,
		CaptureGuessesPerHour: cfg.Limits.CaptureGuessesPerSenderPerHour, EventMaxAge: o.EventMaxAge,
	}
	st := newStorageMetrics("wal_fsync")
	var m *memstore.Store
	if o.InMemory {
		m = memstore.New(mo)
	} else {
		start := time.Now()
		var err error
		m, err = memstore.Open(cfg.DataDir, mo, memstore.DurableOptions{WAL: wal.Options{Logger: o.Logger, OnSync: st.walSync}})
		if err != nil {
			return nil, err
		}
		logStore(o.Logger, cfg, nil)
		o.Logger.Info("state recovered", "data_dir", cfg.DataDir, "sessions", m.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	return &Store{
		Backend: backend.Backend{
			Store: m, BoundsSenderGuesses: true,
			Collectors: append(st.collectors(), processedIDs(m)),
		},
		Memory: m,
	}, nil
}

// openRedis opens store: redis.
func openRedis(cfg config.Config, o Options) (*Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	rs, err := redisstore.Open(ctx, redisstore.Options{
		URL: cfg.RedisURL.Reveal(), Prefix: cfg.RedisPrefix, Now: o.Now, MaxAttempts: cfg.Verification.MaxAttempts,
		CodeLength: cfg.Verification.CodeLength, Retention: cfg.Retention,
		CaptureGuessesPerHour: cfg.Limits.CaptureGuessesPerSenderPerHour, Timeout: backend.Budget,
		UnmatchedPerSenderPerHour: cfg.Limits.UnmatchedPerSenderPerHour,
		Unsafe:                    cfg.RedisUnsafe, Logger: o.Logger, Numbers: numberList(cfg.Numbers),
		WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout, WaitAOF: cfg.RedisWaitAOF,
	})
	if err != nil {
		return nil, err
	}
	st := newStorageMetrics("redis")
	rs.Client().AddHook(redisTimer{st})
	logStore(o.Logger, cfg, rs)
	return &Store{
		Backend: backend.Backend{
			Store: rs, Now: rs.Now, SelfHealing: true,
			Shared:     &backend.Shared{Client: rs.Client(), Prefix: rs.LimitPrefix()},
			Collectors: append(st.collectors(), clockSkew(rs), unsafeNodes(rs)),
		},
		Redis: rs,
	}, nil
}

func numberList(ns []config.Number) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Number
	}
	return out
}
