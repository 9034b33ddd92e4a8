package config

import (
	"strings"
	"time"

	"github.com/mogate/mogate/matcher/redisstore/redisurl"
)

// checkRedis checks redis_url (its errors never quote it: it may hold a
// password) and the WAIT settings that go with it.
func (c *Config) checkRedis() []error {
	var errs []error
	at := func(key, format string, args ...any) {
		errs = append(errs, errAt(c.lineOf(key), key, format, args...))
	}
	u, err := redisurl.Parse(c.RedisURL.Reveal())
	if err != nil {
		at("redis_url", "%s", strings.TrimPrefix(err.Error(), "redis_url: "))
	}
	if c.RedisWaitReplicas < 0 || c.RedisWaitReplicas > 16 {
		at("redis_wait_replicas", "must be between 0 and 16, got %d", c.RedisWaitReplicas)
	}
	if c.RedisWaitTimeout < time.Millisecond || c.RedisWaitTimeout > 2*time.Second {
		at("redis_wait_timeout", "must be between 1ms and 2s, got %s", c.RedisWaitTimeout)
	}
	if err == nil && u.Kind != redisurl.Single && c.RedisWaitReplicas == 0 && !c.RedisUnsafe {
		name := map[redisurl.Kind]string{redisurl.Sentinel: "Sentinel", redisurl.Cluster: "a Redis Cluster"}[u.Kind]
		key := "redis_wait_replicas"
		if c.lineOf(key) == 0 {
			key = "redis_url"
		}
		at(key, "with %s a failover loses the writes its replicas lack: set redis_wait_replicas to 1 or more "+
			"(or redis_unsafe: true to accept that)", name)
	}
	return errs
}
