package gateway

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// limitClient is the store's Redis client as go-redis/redis_rate sees it:
// the key it names rate:<name>:<key> is <prefix><name>:<key> in Redis,
// with prefix the store's LimitPrefix, so the limits stay among the
// deployment's keys (redis_prefix).
type limitClient struct {
	redis.UniversalClient
	prefix string
}

func (c limitClient) keys(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		if rest, ok := strings.CutPrefix(k, "rate:"); ok {
			k = c.prefix + rest
		}
		out[i] = k
	}
	return out
}

func (c limitClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.Eval(ctx, script, c.keys(keys), args...)
}

func (c limitClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalSha(ctx, sha1, c.keys(keys), args...)
}

func (c limitClient) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalRO(ctx, script, c.keys(keys), args...)
}

func (c limitClient) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return c.UniversalClient.EvalShaRO(ctx, sha1, c.keys(keys), args...)
}

func (c limitClient) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return c.UniversalClient.Del(ctx, c.keys(keys)...)
}
