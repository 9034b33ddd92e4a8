package matcher

import (
	"container/heap"
	"context"
	"time"
)

// apply performs one record on a locked shard. It is the only code that
// changes a session, live or during recovery, so both always agree.
func (m *Matcher) apply(sh *shard, r Record) {
	if r.Op == OpCreate {
		s := r.Session
		s.code, _ = NormalizeCode(s.Code)
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
		heap.Push(&sh.timers, timer{at: s.ExpiresAt.UnixNano(), id: s.ID})
		return
	}
	s := sh.byID[r.ID]
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
	heap.Push(&sh.timers, timer{at: at.Add(m.opt.Retention).UnixNano(), id: s.ID, purge: true})
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
		for len(sh.timers) > 0 && sh.timers[0].at <= now.UnixNano() {
			t := heap.Pop(&sh.timers).(timer)
			s := sh.byID[t.id]
			switch {
			case s == nil:
			case t.purge && s.Status.Final() && !now.Before(s.FinishedAt.Add(m.opt.Retention)):
				delete(sh.byID, s.ID)
				delete(sh.byToken, s.PageToken)
				if s.IdemKey != "" {
					purged = append(purged, s)
				}
			case !t.purge && s.Status == Pending && !now.Before(s.ExpiresAt):
				r := Record{Op: OpExpire, At: s.ExpiresAt, ID: s.ID}
				m.apply(sh, r)
				recs = append(recs, r)
				changed = append(changed, s)
			}
		}
		var c Commit = committed{}
		if len(recs) > 0 {
			c = m.opt.Journal.Append(recs...)
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
	at    int64 // unix nanoseconds
	id    string
	purge bool // drop the finished session instead of expiring it
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
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
