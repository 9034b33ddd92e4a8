package wire

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore"
)

// logStore says at start where sessions live: the data directory of store:
// memory, or each Redis node's address (never the URL, which may hold a
// password), role, version and the persistence settings read from it, and
// the key prefix.
func logStore(log *slog.Logger, cfg config.Config, rs *redisstore.Store) {
	if rs == nil {
		log.Info("store", "store", "memory", "data_dir", cfg.DataDir)
		return
	}
	for _, srv := range rs.Servers() {
		log.Info("store", "store", "redis", "redis_addr", srv.Addr, "redis_role", srv.Role, "redis_version", srv.Version,
			"appendonly", srv.Settings["appendonly"], "appendfsync", srv.Settings["appendfsync"],
			"no_appendfsync_on_rewrite", srv.Settings["no-appendfsync-on-rewrite"],
			"maxmemory_policy", srv.Settings["maxmemory-policy"], "redis_unsafe", cfg.RedisUnsafe,
			"redis_wait_replicas", cfg.RedisWaitReplicas, "redis_prefix", cfg.RedisPrefix)
	}
}

// unsafeNodes is mogate_redis_unsafe_nodes, read at scrape time from the
// store's last settings check (at start, then every minute).
func unsafeNodes(rs *redisstore.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_redis_unsafe_nodes",
		Help: "Redis nodes (primaries and replicas) whose settings can lose acknowledged writes (appendonly, appendfsync, no-appendfsync-on-rewrite, maxmemory-policy) or that could not be checked, at the last check (every minute).",
	}, func() float64 { return float64(rs.UnsafeNodes()) })
}
