package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// waiting reports whether writes wait for replicas (WAIT or WAITAOF).
func (s *Store) waiting() bool { return s.opt.WaitReplicas > 0 || s.opt.WaitAOF }

// write runs the write commands fn adds, and with Options.WaitReplicas or
// Options.WaitAOF follows them with WAIT N timeout (WAITAOF 1 N timeout)
// in one pipeline: one round trip, on one connection of the node that
// took the writes (on Cluster, the primary of key's slot), so the WAIT
// counts exactly them. Without waiting, fn's commands run on the client
// as they are added. The caller reads its commands' results first: a
// failed write is that write's error. The returned error is the WAIT's:
// fewer than N replicas acknowledged within the timeout (the writes may
// stand), or the WAIT failed.
func (s *Store) write(ctx context.Context, key string, fn func(redis.Cmdable)) error {
	if !s.waiting() {
		fn(s.rdb)
		return nil
	}
	var c redis.Cmdable = s.rdb
	if s.cluster != nil {
		node, err := s.cluster.MasterForKey(ctx, key)
		if err != nil {
			// fn's commands exist but never run: their zero results are
			// not read, since the caller checks this error (written).
			pipe := s.rdb.Pipeline()
			fn(pipe)
			pipe.Discard()
			return unavailable(err)
		}
		c = node
	}
	pipe := c.Pipeline()
	fn(pipe)
	w := s.waitCmd(ctx)
	_ = pipe.Process(ctx, w)
	_, _ = pipe.Exec(ctx) // each command holds its own result
	return s.waited(w)
}

// waitCmd is the WAIT N timeout (WAITAOF 1 N timeout) that follows writes
// on their connection when they wait for replicas: it covers every write
// sent before it on that connection.
func (s *Store) waitCmd(ctx context.Context) *redis.Cmd {
	if s.opt.WaitAOF {
		return redis.NewCmd(ctx, "waitaof", 1, s.opt.WaitReplicas, s.opt.WaitTimeout.Milliseconds())
	}
	return redis.NewCmd(ctx, "wait", s.opt.WaitReplicas, s.opt.WaitTimeout.Milliseconds())
}

// waited is the verdict of a waitCmd once sent: nil when enough replicas
// acknowledged the writes before it, else ErrUnavailable.
func (s *Store) waited(w *redis.Cmd) error {
	if s.opt.WaitAOF {
		res, err := w.Int64Slice()
		if err != nil {
			return unavailable(fmt.Errorf("WAITAOF: %w", err))
		}
		if len(res) != 2 || res[0] < 1 || res[1] < int64(s.opt.WaitReplicas) {
			return unavailable(fmt.Errorf("WAITAOF: %v (local, replicas) of 1, %d fsync'd within %s; the write may stand",
				res, s.opt.WaitReplicas, s.opt.WaitTimeout))
		}
		return nil
	}
	n, err := w.Int64()
	if err != nil {
		return unavailable(fmt.Errorf("WAIT: %w", err))
	}
	if n < int64(s.opt.WaitReplicas) {
		return unavailable(fmt.Errorf("WAIT: %d of %d replicas acknowledged within %s; the write may stand",
			n, s.opt.WaitReplicas, s.opt.WaitTimeout))
	}
	return nil
}

// confirm, when writes wait for replicas, acknowledges what a replay reads
// back (a session or an outcome an earlier call wrote, whose own WAIT may
// have failed: the caller retried after a 503) only once the replicas have
// it: a small write on the primary of tag's slot, then WAIT. Replication
// is ordered, so a replica that has this write has every earlier one
// there. Without waiting it does nothing.
func (s *Store) confirm(ctx context.Context, tag string) error {
	if !s.waiting() {
		return nil
	}
	k := s.k.key(tag, keySync)
	cctx, cancel := s.timeout(ctx)
	defer cancel()
	var cmd *redis.StatusCmd
	werr := s.write(cctx, k, func(c redis.Cmdable) { cmd = c.Set(cctx, k, "1", time.Minute) })
	return s.written(cctx, cmd.Err(), werr)
}
