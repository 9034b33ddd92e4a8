package memstore

import (
	"context"
	"slices"
	"time"

	"github.com/mogate/mogate/matcher"
)

// Wait blocks until the session's status is no longer pending, ctx ends or
// the session expires, and returns the session then.
func (m *Store) Wait(ctx context.Context, id string) (matcher.Session, error) {
	var ch chan struct{}
	var final matcher.Session
	var until time.Duration
	var sh *shard
	var raw [16]byte
	if !m.lookup(id, func(s0 *shard, s *session) {
		if s.status.Final() {
			final = s.view()
			return
		}
		ch = make(chan struct{})
		sh, raw = s0, s.id
		sh.watch[raw] = append(sh.watch[raw], ch)
		// The matcher's clock, not the wall clock: sessions are timed by it.
		until = unixTime(s.expires).Sub(m.opt.Now())
	}) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	if ch == nil {
		return final, nil
	}
	t := time.NewTimer(max(until, 0))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		m.unwatch(sh, raw, ch)
	case <-ctx.Done():
		m.unwatch(sh, raw, ch)
	}
	return m.get(id)
}

// unwatch removes a watcher that gave up before the session changed, so
// timed-out long-polls and stream heartbeats leave nothing behind.
func (m *Store) unwatch(sh *shard, id [16]byte, ch chan struct{}) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	chs := sh.watch[id]
	i := slices.Index(chs, ch)
	if i < 0 {
		return // finish already closed and removed it
	}
	chs = slices.Delete(chs, i, i+1)
	if len(chs) == 0 {
		delete(sh.watch, id)
	} else {
		sh.watch[id] = chs
	}
}

// watchers returns how many Wait calls are registered, for tests.
func (m *Store) watchers() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, chs := range sh.watch {
			n += len(chs)
		}
		sh.mu.Unlock()
	}
	return n
}
