package redisstore_test

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// cmdHook is a go-redis client hook made of functions: before sees the
// commands of each round trip (a command sent alone, or a pipeline's) as
// it is sent, after once it is answered; with pipelines set, commands
// sent alone pass untouched.
type cmdHook struct {
	before, after func(cmds []redis.Cmder)
	pipelines     bool
}

func (h cmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	if h.pipelines {
		return next
	}
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.around([]redis.Cmder{cmd}, func() error { return next(ctx, cmd) })
	}
}

func (h cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.around(cmds, func() error { return next(ctx, cmds) })
	}
}

func (h cmdHook) around(cmds []redis.Cmder, send func() error) error {
	if h.before != nil {
		h.before(cmds)
	}
	err := send()
	if h.after != nil {
		h.after(cmds)
	}
	return err
}
