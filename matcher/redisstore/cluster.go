package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterDialTimeout bounds a dial to a Cluster node: a dead primary must
// fail fast, so a call can fall back to the slot map's reload instead of
// waiting for a connection that will never come.
const clusterDialTimeout = time.Second

// reloadEvery is the least time between two slot map reloads that
// connection errors ask for.
const reloadEvery = 250 * time.Millisecond

// newClusterClient makes the Cluster client with reloadOnConnErr as its
// first hook, so every caller (the store, the gateway's limits) has it.
func newClusterClient(co *redis.ClusterOptions) *redis.ClusterClient {
	co.DialTimeout = min(co.DialTimeout, clusterDialTimeout)
	c := redis.NewClusterClient(co)
	c.AddHook(&reloadOnConnErr{c: c, every: reloadEvery})
	return c
}

// reloadOnConnErr reloads the slot map when a call to a Cluster fails for
// want of a connection. go-redis reloads it only on a redirect (MOVED,
// ASK, READONLY) or every 10 s; a primary that died answers no redirect,
// so without this the client keeps dialling it for up to 10 s after its
// replica was promoted. Reloads are asynchronous and at most one per
// `every`: the call that failed still fails (503; the caller's retry is
// idempotent), and the calls after the reload find the promoted primary.
type reloadOnConnErr struct {
	c     *redis.ClusterClient
	every time.Duration
	last  atomic.Int64 // unix nanoseconds of the last reload asked for
}

func (h *reloadOnConnErr) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *reloadOnConnErr) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.after(ctx, err)
		return err
	}
}

func (h *reloadOnConnErr) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.after(ctx, err)
		for _, cmd := range cmds {
			h.after(ctx, cmd.Err())
		}
		return err
	}
}

// after asks for a reload when err says the node is gone or the slot's
// owner is changing, unless one was asked for less than `every` ago.
func (h *reloadOnConnErr) after(ctx context.Context, err error) {
	if !staleSlotMap(err) {
		return
	}
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(h.every) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.c.ReloadState(ctx)
}

// staleSlotMap reports whether err may mean the slot map is out of date:
// a connection refused, reset or closed (EOF), a timeout, or a node
// saying the cluster is down or it is no longer a primary. A caller
// giving up (context canceled) and Redis's answers to the command itself
// (redis.Nil, a script's error) say nothing about the slot map.
func staleSlotMap(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return true // net.OpError, io.EOF, timeouts, a closed pool
	}
	for _, p := range []string{"CLUSTERDOWN", "READONLY", "MASTERDOWN", "TRYAGAIN", "LOADING"} {
		if strings.HasPrefix(re.Error(), p) {
			return true
		}
	}
	return false
}
