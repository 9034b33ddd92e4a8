package matcher

import (
	"context"
	"time"
)

// apply performs one record on a locked shard. It is the only code that
// changes a session, live or during recovery, so both always agree.
func (m *Matcher) apply(sh *shard, r Record) {
	if r.Op == OpCreate {
		s := r.Session
		if s.code == "" {
			s.code, _ = NormalizeCode(s.Code)
		}
		sh.byID[s.ID] = s
		sh.byToken[s.PageToken] = s
		if s.Capture() {
			if sh.byCode[s.To] == nil {
				sh.byCode[s.To] = map[string]*Session{}
			}
			sh.byCode[s.To][s.code] = s
		} else {
			sh.byPair[pairKey{s.To, s.Number}] = s
		}
		sh.timers.push(timer{at: s.ExpiresAt.UnixNano(), id: s.ID})
		return
	}
	m.applyTo(sh, sh.byID[r.ID], r)
}

// applyTo performs a record on session s (nil: nothing to do), held by the
// locked shard sh; callers that hold the session skip the lookup.
func (m *Matcher) applyTo(sh *shard, s *Session, r Record) {
	if s == nil || s.Status.Final() {
		return
	}
	switch r.Op {
	case OpAttempt:
		s.Attempts++
	case OpFail:
		s.Attempts++
		s.Provider, s.MessageID = r.Provider, r.MessageID
		m.finish(sh, s, Failed, r.At)
	case OpVerify:
		s.VerifiedNumber, s.Provider, s.MessageID = r.From, r.Provider, r.MessageID
		m.finish(sh, s, Verified, r.At)
	case OpCancel:
		s.Reason = r.Reason
		m.finish(sh, s, Cancelled, r.At)
	case OpExpire:
		m.finish(sh, s, Expired, r.At)
	}
}

func (m *Matcher) finish(sh *shard, s *Session, st Status, at time.Time) {
	s.Status, s.FinishedAt = st, at
	if s.Capture() {
		if byCode := sh.byCode[s.To]; byCode[s.code] == s {
			delete(byCode, s.code)
			if len(byCode) == 0 {
				delete(sh.byCode, s.To)
			}
		}
	} else if k := (pairKey{s.To, s.Number}); sh.byPair[k] == s {
		delete(sh.byPair, k)
	}
	for _, ch := range sh.watch[s.ID] {
		close(ch)
	}
	delete(sh.watch, s.ID)
}

// Sweep expires pending sessions whose TTL has run out and drops finished
// sessions older than the retention. Run calls it periodically.
func (m *Matcher) Sweep() error {
	now := m.opt.Now().UTC()
	var firstErr error
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		var recs []Record
		var changed, purged []*Session
		if now.Sub(sh.lastPurge) >= purgeEvery {
			// Finished sessions leave after the retention: one pass over the
			// shard a minute keeps the hot path free of purge bookkeeping.
			sh.lastPurge = now
			for _, s := range sh.byID {
				if s.Status.Final() && !now.Before(s.FinishedAt.Add(m.opt.Retention)) {
					delete(sh.byID, s.ID)
					delete(sh.byToken, s.PageToken)
					if s.IdemKey != "" {
						purged = append(purged, s)
					}
				}
			}
		}
		for len(sh.timers) > 0 && sh.timers[0].at <= now.UnixNano() {
			t := sh.timers.pop()
			s := sh.byID[t.id]
			switch {
			case s == nil:
			case s.Status == Pending && !now.Before(s.ExpiresAt):
				r := Record{Op: OpExpire, At: s.ExpiresAt, ID: s.ID}
				m.apply(sh, r)
				recs = append(recs, r)
				changed = append(changed, s)
			}
		}
		var c Commit = committed{}
		if len(recs) > 0 {
			c = m.journal(recs...)
		}
		snaps := snapshot(changed)
		sh.mu.Unlock()
		// Create locks an idempotency shard before a session shard; this
		// runs after the session shard is released to keep that order.
		for _, s := range purged {
			is := &m.idem[fnv32(s.Key, s.IdemKey)%numShards]
			is.mu.Lock()
			if is.m[s.Key+"\x00"+s.IdemKey] == s.ID {
				delete(is.m, s.Key+"\x00"+s.IdemKey)
			}
			is.mu.Unlock()
		}
		if err := c.Wait(); err != nil && firstErr == nil {
			firstErr = err
		}
		m.notify(snaps)
	}
	m.parts.gc(now)
	return firstErr
}

// Run sweeps every interval until ctx ends; a durable matcher also takes
// snapshots when they are due.
func (m *Matcher) Run(ctx context.Context, interval time.Duration) {
	if m.durable != nil {
		go m.runSnapshots(ctx, time.Second)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = m.Sweep()
		}
	}
}

type timer struct {
	at int64 // unix nanoseconds
	id string
}

// purgeEvery is how often Sweep looks for finished sessions past retention.
const purgeEvery = time.Minute

type timerHeap []timer

// push and pop keep a binary min-heap on at, typed (container/heap would
// box every timer into an interface: an allocation per push).
func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if q[p].at <= q[i].at {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *timerHeap) pop() timer {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = timer{}
	q = q[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && q[l].at < q[m].at {
			m = l
		}
		if r < n && q[r].at < q[m].at {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// Replay applies a record read back from the journal. Records must be
// replayed in the order the journal received them; Replay writes nothing.
func (m *Matcher) Replay(r Record) {
	switch r.Op {
	case OpProcessed:
		if m.opt.Now().Sub(r.At) < m.opt.Retention {
			m.dedupe.mu.Lock()
			m.dedupe.done.Add(r.Provider+"\x00"+r.MessageID, processedEntry{Outcome: r.Outcome, at: r.At.UnixNano()})
			m.dedupe.mu.Unlock()
		}
		return
	case OpPart:
		if r.Part != nil {
			m.parts.add(r.Part.Message, r.At)
		}
		return
	}
	idx, ok := shardOfID(r.ID)
	if !ok {
		return
	}
	sh := &m.shards[idx]
	sh.mu.Lock()
	if r.Op == OpCreate && r.Session != nil {
		s := *r.Session
		r.Session = &s
		if s.IdemKey != "" {
			is := &m.idem[fnv32(s.Key, s.IdemKey)%numShards]
			is.mu.Lock()
			is.m[s.Key+"\x00"+s.IdemKey] = s.ID
			is.mu.Unlock()
		}
	}
	m.apply(sh, r)
	sh.mu.Unlock()
}
