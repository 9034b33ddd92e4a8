package memstore

import (
	"context"
	"time"

	"github.com/mogate/mogate/matcher"
)

// apply performs one record on a locked shard. It is the only code that
// changes a session, live or during recovery, so both always agree.
func (m *Store) apply(sh *shard, r Record) {
	if r.Op == OpCreate {
		s := r.sess
		if s == nil {
			var ok bool
			if s, ok = fromView(r.Session); !ok {
				return
			}
		}
		m.insert(sh, s)
		return
	}
	_, raw, ok := parseID(r.ID)
	if !ok {
		return
	}
	m.applyTo(sh, sh.byID.get(raw), r)
}

// insert indexes a session; the caller holds every shard of s
// (shardsOf) and sh is its home: by id and page token there, and, while
// pending, under each number of its routes, with an expiry timer at home.
// A finished session whose event is undelivered (restored from a
// snapshot) brings its event.
func (m *Store) insert(sh *shard, s *session) {
	sh.byID.put(s)
	sh.byToken.put(s)
	if s.status != matcher.Pending {
		if s.notified() == matcher.NotNotified {
			sh.fresh = append(sh.fresh, s)
		}
		return
	}
	for i := range s.numCount() {
		num, ix := s.routeNumber(i), &m.shards[s.shardAt(i)]
		if s.capture() {
			if ix.byCode[num] == nil {
				ix.byCode[num] = map[string]*session{}
			}
			ix.byCode[num][s.normCode()] = s
		} else {
			ix.pairAdd(s, num)
		}
		m.pending.add(ix, num, 1)
	}
	sh.timers.push(timer{at: s.expires, s: s})
}

// pairAdd puts a pending expected-sender session into the chain of
// (num, sender), which is ordered by creation (the older session wins a
// match) whatever order recovery inserts sessions in.
func (sh *shard) pairAdd(s *session, num string) {
	head := sh.byPair.get(num, s.number)
	if head == nil || s.created < head.created {
		if head != nil {
			s.setNextOn(num, head)
		}
		sh.byPair.set(num, s.number, s)
		return
	}
	prev := head
	for n := prev.nextOn(num); n != nil && n.created <= s.created; n = prev.nextOn(num) {
		prev = n
	}
	if n := prev.nextOn(num); n != nil {
		s.setNextOn(num, n)
	}
	prev.setNextOn(num, s)
}

// pairRemove takes a session out of the chain of (num, sender).
func (sh *shard) pairRemove(s *session, num string) {
	next := s.nextOn(num)
	s.setNextOn(num, nil)
	if sh.byPair.replaceHead(num, s, next) {
		return
	}
	for p := sh.byPair.get(num, s.number); p != nil; p = p.nextOn(num) {
		if p.nextOn(num) == s {
			p.setNextOn(num, next)
			return
		}
	}
}

// applyTo performs a record on session s (nil: nothing to do), held by the
// locked shard sh; callers that hold the session skip the lookup. A status
// that becomes final queues its event on the shard (sh.fresh), for the
// journal call of the same step; a delivered (or dead) event leaves the
// event table.
func (m *Store) applyTo(sh *shard, s *session, r Record) {
	m.perform(sh, s, &r, r.At.UnixNano(), false, 0)
}

// perform is applyTo, through a pointer (a Record is some 300 bytes). With
// count, r is a live verification (or failure by policy) whose
// SenderSessions24h is counted here, before its proof is kept: a
// verification reads the count and adds its own entry under one lock and
// one probe of the sender table, with hf, hashString(r.From), which its
// lookup of the pair has made. A replayed record carries its count and
// only adds the entry. at is r.At.UnixNano(), which the caller has.
func (m *Store) perform(sh *shard, s *session, r *Record, at int64, count bool, hf uint64) {
	if s != nil && s.status.Final() {
		was := s.notified()
		switch r.Op {
		case OpDelivered:
			s.setNotified(matcher.Delivered)
		case OpDead:
			s.setNotified(matcher.Dead)
		default:
			return
		}
		// A session's event leaves the table with its first delivery (or
		// giving up): a repeated one has nothing to remove.
		if was == matcher.NotNotified {
			m.events.removeSession(s.id)
		}
		return
	}
	if s == nil {
		return
	}
	switch r.Op {
	case OpAttempt:
		s.attempts++
	case OpFail:
		s.messageID = r.MessageID
		s.setProvider(r.Provider)
		if r.Reason == "" { // the last allowed attempt
			s.attempts++
			m.finish(s, matcher.Failed, at)
			break
		}
		// A message that would have verified s, refused by policy.
		if count {
			r.Signals.SenderSessions24h = m.senders.count(s.key, r.From, r.At)
		}
		s.setProof(r)
		m.finish(s, matcher.Failed, at)
		s.setReason(reasonCode(matcher.Failed, r.Reason))
	case OpVerify:
		m.verified(s, r, at, count, hf)
	case OpCancel:
		m.finish(s, matcher.Cancelled, at)
		s.setReason(reasonCode(matcher.Cancelled, r.Reason))
	case OpExpire:
		m.finish(s, matcher.Expired, at)
	}
	if s.status.Final() && s.notified() == matcher.NotNotified {
		sh.fresh = append(sh.fresh, s)
	}
}

// verified is perform's OpVerify on pending session s: live verify calls
// it directly (no dispatch on a status it knows), then queues the event as
// perform does.
func (m *Store) verified(s *session, r *Record, at int64, count bool, hf uint64) {
	if r.From != s.number {
		s.extra().verifiedNumber = r.From // capture mode learns the sender
	}
	s.messageID = r.MessageID
	s.setProvider(r.Provider)
	if count {
		r.Signals.SenderSessions24h = m.senders.countAndAdd(s.key, r.From, hf, at, s.id)
	} else {
		m.senders.add(s.key, r.From, r.At, s.id)
	}
	s.setProof(r)
	m.finish(s, matcher.Verified, at)
}

// setProof records the route and signals of the message of r, looked up
// in place (Record.proof): no copy of them into a proof first. It calls
// proofs.get itself (not sharedProof): that keeps it within the inlining
// budget, so that perform makes no call for it.
func (s *session) setProof(r *Record) {
	if p := proofs.get(r.proof()); p != nil {
		s.proof = p
	}
}

// finish gives s its final status st and that status's reason (OpCancel
// and a rejection then set which it was), takes it out of the match
// indexes of every number of its routes (the caller holds their shards)
// and wakes its watchers, who wait at its home. at is when (unix ns).
func (m *Store) finish(s *session, st matcher.Status, at int64) {
	s.status, s.finished = st, at
	s.setReason(finishReason(st))
	home := &m.shards[s.id[0]]
	if s.x == nil {
		// One number, to, indexed at home, and no chain link of its own
		// (extra fields hold them): no loop, and its pair's slot is the
		// one its lookup found (pairIndex.dropHead).
		m.pending.add(home, s.to, -1)
		if s.capture() {
			m.unindexCode(home, s, s.to)
		} else if !home.byPair.dropHead(s) {
			home.pairRemove(s, s.to)
		}
	} else {
		for i := range s.numCount() {
			num, ix := s.routeNumber(i), &m.shards[s.shardAt(i)]
			m.pending.add(ix, num, -1)
			if s.capture() {
				m.unindexCode(ix, s, num)
			} else {
				ix.pairRemove(s, num)
			}
		}
	}
	if len(home.watch) == 0 {
		return // nobody waits on this shard: no lookup
	}
	if chs, ok := home.watch[s.id]; ok {
		for _, ch := range chs {
			close(ch)
		}
		delete(home.watch, s.id)
	}
}

// unindexCode takes capture session s out of the codes of number num, in
// shard ix.
func (m *Store) unindexCode(ix *shard, s *session, num string) {
	if byCode := ix.byCode[num]; byCode[s.normCode()] == s {
		delete(byCode, s.normCode())
		if len(byCode) == 0 {
			delete(ix.byCode, num)
		}
	}
}

// Sweep expires pending sessions whose TTL has run out and drops finished
// sessions older than the retention. Run calls it periodically.
func (m *Store) Sweep() error {
	now := m.opt.Now().UTC()
	var firstErr error
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		var recs []Record
		var purged []*session
		if now.Sub(sh.lastPurge) >= purgeEvery {
			// Finished sessions leave after the retention: one pass over the
			// shard a minute keeps the hot path free of purge bookkeeping.
			sh.lastPurge = now
			if i == 0 {
				m.guesses.prune(now)
			}
			limit := now.Add(-m.opt.Retention).UnixNano()
			var old []*session
			for s := range sh.byID.all() {
				if s.status.Final() && s.finished <= limit {
					old = append(old, s)
				}
			}
			for _, s := range old {
				sh.byID.del(s.id)
				sh.byToken.del(s.token)
				if s.x != nil && s.x.idemKey != "" {
					purged = append(purged, s)
				}
			}
		}
		var wide []string // sessions indexed in other shards too: expired below
		for len(sh.timers) > 0 && sh.timers[0].at <= now.UnixNano() {
			s := sh.timers.pop().s
			if sh.byID.get(s.id) == s && s.status == matcher.Pending && now.UnixNano() >= s.expires {
				if s.shardsOf() != bit(i) {
					wide = append(wide, s.idString())
					continue
				}
				r := Record{Op: OpExpire, At: unixTime(s.expires), ID: s.idString()}
				m.applyTo(sh, s, r)
				recs = append(recs, r)
			}
		}
		var c Commit = committed{}
		if len(recs) > 0 {
			c = m.journal(sh, recs...)
		}
		sh.mu.Unlock()
		for _, id := range wide {
			var wc Commit
			m.lockSession(id, func(sh *shard, s *session) {
				if s.status == matcher.Pending && now.UnixNano() >= s.expires {
					r := Record{Op: OpExpire, At: unixTime(s.expires), ID: id}
					m.applyTo(sh, s, r)
					wc = m.journal(sh, r)
				}
			})
			if wc != nil {
				if err := wc.Wait(); err != nil && firstErr == nil {
					firstErr = err
				}
			}
		}
		// Create locks an idempotency shard before a session shard; this
		// runs after the session shard is released to keep that order.
		for _, s := range purged {
			is := &m.idem[fnv32(s.key, s.x.idemKey)%numShards]
			is.mu.Lock()
			if is.m[s.key+"\x00"+s.x.idemKey] == s.idString() {
				delete(is.m, s.key+"\x00"+s.x.idemKey)
			}
			is.mu.Unlock()
		}
		if err := c.Wait(); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	m.parts.gc(now)
	m.dedupe.sweep(now)
	m.senders.sweep(now)
	return firstErr
}

// Run expires sessions (and, durable, snapshots) until ctx ends.
func (m *Store) Run(ctx context.Context) { m.run(ctx, 250*time.Millisecond) }

// run sweeps every interval until ctx ends; a durable store also takes
// snapshots when they are due.
func (m *Store) run(ctx context.Context, interval time.Duration) {
	if m.durable != nil {
		go every(ctx, time.Second, m.maybeSnapshot)
	}
	every(ctx, interval, m.Sweep)
}

func isEventID(id string) bool { return len(id) > 4 && id[:4] == "evt_" }

// every calls fn each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func() error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = fn()
		}
	}
}

type timer struct {
	at int64    // unix nanoseconds
	s  *session // the session when the timer was set: not one that replaced it under its id
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

// Replay applies a record read back from the journal, through the
// component it belongs to. Records must be replayed in the order the
// journal received them; Replay writes nothing.
func (m *Store) Replay(r Record) {
	switch {
	case r.ofSession():
		m.replaySession(r)
	case r.Op == OpProcessed:
		m.dedupe.replay(r, m.opt.Now())
	case r.Op == OpPart:
		m.parts.replay(r)
	default:
		m.events.replay(r)
	}
}
