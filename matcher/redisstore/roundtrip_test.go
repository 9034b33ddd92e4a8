package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/redis/go-redis/v9"
)

// calls counts what a go-redis client sends: single commands (by name)
// and pipelines.
type calls struct {
	cmds, pipes atomic.Int64
	byName      func(string)
}

func (c *calls) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (c *calls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.cmds.Add(1)
		if c.byName != nil {
			c.byName(cmd.Name())
		}
		return next(ctx, cmd)
	}
}

func (c *calls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipes.Add(1)
		return next(ctx, cmds)
	}
}

// TestPendingForOneRoundTrip: the pending sessions of a sender on every
// pool number take one pipeline, whatever the number of numbers.
func TestPendingForOneRoundTrip(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	const sender = "+14155550123"
	var tos []string
	for i := range 12 {
		tos = append(tos, fmt.Sprintf("+1415555%04d", 1000+i))
	}
	var want []string
	for i, to := range []string{tos[2], tos[7], tos[7], tos[11]} {
		v, _, err := s.Create(ctx, matcher.CreateRequest{Key: fmt.Sprint("key", i), Number: sender, To: to, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, v.ID)
	}
	for _, fresh := range []bool{true, false} {
		if fresh {
			// A node that lost the script (restart, failover) costs one
			// more round trip, once.
			if err := srv.Client().ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c := &calls{}
		s.Client().AddHook(c)
		got, err := s.PendingFor(ctx, sender, tos)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, v := range got {
			ids = append(ids, v.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Fatalf("PendingFor = %v, want %v", ids, want)
		}
		total := c.cmds.Load() + c.pipes.Load()
		if !fresh && (c.pipes.Load() != 1 || c.cmds.Load() != 0) {
			t.Errorf("%d numbers: %d commands and %d pipelines, want one pipeline", len(tos), c.cmds.Load(), c.pipes.Load())
		}
		if fresh && total > 3 {
			t.Errorf("%d numbers, script not loaded: %d round trips, want at most 3", len(tos), total)
		}
	}
}
