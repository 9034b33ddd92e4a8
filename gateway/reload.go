package gateway

import (
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/pool"
	"github.com/redis/go-redis/v9"
)

// reloadable is the configuration that Reload (SIGHUP) replaces: API keys,
// the pool and the rate limits. A request reads it once (s.live()), so it
// sees one configuration from start to end.
type reloadable struct {
	keys                                     keyring
	pool                                     *pool.Pool
	limits                                   config.Limits
	createLimit, numberLimit, unmatchedLimit rateLimit
	// unmatchedLimit and captureLimit are a sender's budgets across
	// receiving numbers, charged before the match; with store: memory
	// the matcher keeps the capture guesses itself (captureLimit is none).
	captureLimit  rateLimit
	unmatchedKeys []string // API keys told of unmatched messages
}

// live returns the configuration in force.
func (s *Server) live() *reloadable { return s.rt.Load() }

// newReloadable builds the reloadable part of cfg. Limits whose value did
// not change keep their state from prev (nil at start), so a reload does
// not hand out a fresh budget.
func (s *Server) newReloadable(cfg config.Config, p *pool.Pool, prev *reloadable, rdb redis.UniversalClient) *reloadable {
	l := cfg.Limits
	r := &reloadable{keys: newKeyring(cfg.APIKeys), pool: p, limits: l}
	r.createLimit = newRateLimit(l.CreatesPerKeyPerSecond, time.Second, "creates-per-key", rdb)
	// numberLimit counts per (API key, expected sender number).
	r.numberLimit = newRateLimit(float64(l.CreatesPerNumberPerHour), time.Hour, "creates-per-key-number", rdb)
	r.unmatchedLimit = newRateLimit(float64(l.UnmatchedPerSenderPerHour), time.Hour, "unmatched-per-sender", rdb)
	r.captureLimit = noLimit{}
	if !s.boundsGuesses {
		// store: redis counts both budgets per (sender, receiving number)
		// in the match's own call (one hash slot); these count them per
		// sender across numbers, as the memory store does, each charged
		// in one call before the match.
		r.captureLimit = newRateLimit(float64(l.CaptureGuessesPerSenderPerHour), time.Hour, "capture-guesses-per-sender", rdb)
	}
	if prev != nil {
		if prev.limits.CreatesPerKeyPerSecond == l.CreatesPerKeyPerSecond {
			r.createLimit = prev.createLimit
		}
		if prev.limits.CreatesPerNumberPerHour == l.CreatesPerNumberPerHour {
			r.numberLimit = prev.numberLimit
		}
		if prev.limits.UnmatchedPerSenderPerHour == l.UnmatchedPerSenderPerHour {
			r.unmatchedLimit = prev.unmatchedLimit
		}
		if prev.limits.CaptureGuessesPerSenderPerHour == l.CaptureGuessesPerSenderPerHour {
			r.captureLimit = prev.captureLimit
		}
	}
	for _, k := range cfg.APIKeys {
		if k.UnmatchedEvents && k.WebhookURL != "" && k.WebhookSecret.IsSet() {
			r.unmatchedKeys = append(r.unmatchedKeys, k.Name)
		}
	}
	return r
}

// Reload applies the api_keys, numbers, limits and log_level of cfg, a
// configuration validated by config.Load, without touching sessions,
// streams or events. It refuses, changing nothing, a cfg whose numbers name
// a provider entry this process does not run (providers change only at a
// restart). Settings that only a restart applies are logged as such. The
// result is the mogate_config_reload_success metric.
func (s *Server) Reload(cfg config.Config) (err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	defer func() { s.metrics.reloaded(time.Now(), err == nil) }()
	for _, n := range cfg.Numbers {
		if _, ok := s.adapters[n.Provider]; !ok {
			return fmt.Errorf("gateway: reload: number %s names provider entry %q, which this process does not run (providers change at a restart)", n.Number, n.Provider)
		}
	}
	prev := s.live()
	p, err := prev.pool.Reload(poolSpecs(cfg.Numbers))
	if err != nil {
		return fmt.Errorf("gateway: reload: %w", err)
	}
	if restart := restartOnly(s.cfg, cfg); len(restart) > 0 {
		s.log.Warn("reload: these settings change only at a restart", "keys", restart)
	}
	s.rt.Store(s.newReloadable(cfg, p, prev, s.sharedRate()))
	s.outbox.SetKeys(cfg.APIKeys)
	s.streams.perKey.setMax(cfg.Limits.StreamsPerKey)
	s.streams.perPage.setMax(cfg.Limits.PageStreamsPerSession)
	if cl := s.conns.Load(); cl != nil {
		cl.SetMax(cfg.Limits.MaxConnections)
	}
	if s.level != nil {
		s.level.Set(LogLevel(cfg.LogLevel))
	}
	s.log.Info("configuration reloaded", "api_keys", len(cfg.APIKeys), "numbers", len(cfg.Numbers), "log_level", cfg.LogLevel)
	return nil
}

// ReloadFailed records a reload that failed before Reload could be called
// (the file is unreadable or invalid): the running configuration is kept.
func (s *Server) ReloadFailed() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.metrics.reloaded(time.Now(), false)
}

// restartOnly names the settings of next that differ from the running
// ones and that Reload does not apply.
func restartOnly(cur, next config.Config) []string {
	var keys []string
	diff := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	diff("listen", cur.Listen != next.Listen)
	diff("public_url", cur.PublicURL != next.PublicURL)
	diff("data_dir", cur.DataDir != next.DataDir)
	diff("store", cur.Store != next.Store)
	diff("redis_url", cur.RedisURL.Reveal() != next.RedisURL.Reveal())
	diff("redis_wait_replicas", cur.RedisWaitReplicas != next.RedisWaitReplicas)
	diff("redis_wait_timeout", cur.RedisWaitTimeout != next.RedisWaitTimeout)
	diff("redis_wait_aof", cur.RedisWaitAOF != next.RedisWaitAOF)
	diff("redis_prefix", cur.RedisPrefix != next.RedisPrefix)
	diff("trusted_proxies", !slices.Equal(cur.TrustedProxies, next.TrustedProxies))
	diff("verification", !reflect.DeepEqual(cur.Verification, next.Verification))
	diff("channels", !reflect.DeepEqual(cur.Channels, next.Channels))
	diff("retention", cur.Retention != next.Retention)
	diff("events", cur.Events != next.Events)
	diff("admin_listen", cur.AdminListen != next.AdminListen)
	diff("shutdown_delay", cur.ShutdownDelay != next.ShutdownDelay)
	diff("limits.capture_guesses_per_sender_per_hour", cur.Limits.CaptureGuessesPerSenderPerHour != next.Limits.CaptureGuessesPerSenderPerHour)
	diff("providers", !slices.EqualFunc(cur.Providers, next.Providers, func(a, b config.Provider) bool {
		return a.Name == b.Name && a.Type == b.Type
	}))
	if cur.Store == "redis" {
		diff("limits.unmatched_per_sender_per_hour", cur.Limits.UnmatchedPerSenderPerHour != next.Limits.UnmatchedPerSenderPerHour)
	}
	return keys
}

func poolSpecs(ns []config.Number) []pool.Spec {
	specs := make([]pool.Spec, len(ns))
	for i, n := range ns {
		specs[i] = pool.Spec{Number: n.Number, Provider: n.Provider, Countries: n.Countries, Weight: n.Weight, Channels: n.Channels, NumberID: n.PhoneNumberID}
	}
	return specs
}

// LogLevel returns the slog level of a log_level value (debug, info, warn,
// error); info for anything else.
func LogLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
