package gateway

import (
	"log/slog"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore"
)

// logStore says at start where sessions live: the data directory of store:
// memory, or each Redis primary's address (never the URL, which may hold a
// password), version and the persistence settings read from it, and the
// key prefix.
func logStore(log *slog.Logger, cfg config.Config, rs *redisstore.Store) {
	if rs == nil {
		log.Info("store", "store", "memory", "data_dir", cfg.DataDir)
		return
	}
	for _, srv := range rs.Servers() {
		log.Info("store", "store", "redis", "redis_addr", srv.Addr, "redis_version", srv.Version,
			"appendonly", srv.Settings["appendonly"], "appendfsync", srv.Settings["appendfsync"],
			"maxmemory_policy", srv.Settings["maxmemory-policy"], "redis_unsafe", cfg.RedisUnsafe,
			"redis_prefix", cfg.RedisPrefix)
	}
}
