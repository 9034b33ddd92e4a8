package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher"
)

// events is the store's event table: every undelivered event — the
// final-status event of each finished session not yet notified, and each
// message.unmatched event not yet delivered. It is filled where the state
// changes: apply queues a session on its shard (shard.fresh) in the same
// step that makes its status final, and the journal call that makes that
// step durable moves it here with its commit; an unmatched event is added
// with the record that journals it. Recovery fills it through the same
// apply. Leases are held in memory: one process owns the store.
//
// A session's event is kept as the session itself, in a log in the order
// the events came, found by raw id through its lease (dueSessions; a
// session has one final status, so one event): the event, its id and its
// copy of the session are made only when it is claimed, not on the step
// that verifies (a verified session changes no more, but for being
// notified, which takes it out of the table).
type events struct {
	mu       sync.Mutex
	due      map[string]*dueEvent // message.unmatched events by id
	sessions dueSessions          // sessions whose final-status event is undelivered (duetable.go)
	wake     chan struct{}
}

type dueEvent struct {
	ev     matcher.Event
	until  time.Time // leased until then
	commit Commit    // the journal's promise for the step that made it; nil once durable
}

type dueSession struct {
	s        *session
	until    int64  // leased until then (unix ns; 0: free)
	attempts int    // the event's failed deliveries (DeferEvent)
	commit   Commit // as dueEvent's
	// prefix is s's id prefix, read when the event entered (under the
	// session's shard lock): the table never reads s.pr, which holds the
	// notified state that AckEvent writes under the shard lock alone.
	prefix uint8
}

func (t *events) init() {
	t.due = map[string]*dueEvent{}
	t.wake = make(chan struct{}, 1)
}

// add puts events made by one journaled step into the table (an event
// already there stays as it is) and signals Events. The caller may hold a
// shard lock.
func (t *events) add(evs []matcher.Event, c Commit) {
	if len(evs) == 0 {
		return
	}
	t.mu.Lock()
	t.put(evs, c)
	t.mu.Unlock()
	t.signal()
}

// put is add for a caller that holds t.mu, and signals afterwards.
func (t *events) put(evs []matcher.Event, c Commit) {
	for _, ev := range evs {
		if _, ok := t.due[ev.ID]; !ok {
			t.due[ev.ID] = &dueEvent{ev: ev, commit: c}
		}
	}
}

// addSessions puts the final-status events of sessions made final by one
// journaled step into the table, and clears ss's entries (a shard's fresh
// list, which its caller then empties). Each session's event is added
// once (see dueSessions): unlike add, this does not look whether it is
// there.
func (t *events) addSessions(ss []*session, c Commit) {
	if len(ss) == 0 {
		return
	}
	t.mu.Lock()
	for i, s := range ss {
		t.sessions.add(dueSession{s: s, prefix: s.prefix(), commit: c})
		ss[i] = nil // one store: clear's call costs more for the one entry a step makes
	}
	t.mu.Unlock()
	t.signal()
}

// signal wakes a claimer without blocking. A token already waiting wakes
// one as well: then it sends nothing (the look at len is what the send's
// own fast path does, without its call).
func (t *events) signal() {
	if len(t.wake) > 0 {
		return
	}
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *events) remove(id string) {
	t.mu.Lock()
	delete(t.due, id)
	t.mu.Unlock()
}

// removeSession forgets the final-status event of the session of raw id.
func (t *events) removeSession(id [16]byte) {
	t.mu.Lock()
	t.sessions.del(id)
	t.mu.Unlock()
}

// dropSessionsBefore forgets the final-status events of sessions that
// finished before since: after a restart they are no longer claimed.
func (t *events) dropSessionsBefore(since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	limit := since.UnixNano()
	t.sessions.deleteFunc(func(e *dueSession) bool { return e.s.finished <= limit })
}

// unmatched returns the message.unmatched events in the table. The caller
// holds t.mu.
func (t *events) unmatched() []*matcher.UnmatchedEvent {
	var out []*matcher.UnmatchedEvent
	for _, e := range t.due {
		out = append(out, e.ev.Unmatched)
	}
	return out
}

// The message.unmatched events' part of durability: their snapshot
// section (uvarint n, n OpUnmatched records), its restore, and the replay
// of OpUnmatched and of the delivery of an unmatched event. The
// final-status events are not in it: they come back with their sessions.

// snapshot appends the message.unmatched events to e.
func (t *events) snapshot(e *enc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	unmatched := t.unmatched()
	e.uv(uint64(len(unmatched)))
	for _, u := range unmatched {
		r := Record{Op: OpUnmatched, At: u.At, Unmatched: u}
		e.record(&r)
	}
}

// restore reads the section snapshot wrote.
func (t *events) restore(d *dec) {
	n := d.uv()
	for i := uint64(0); i < n && d.err == nil; i++ {
		r, err := decodeRecord(d.raw())
		if err != nil || r.Op != OpUnmatched {
			d.fail()
			break
		}
		t.add([]matcher.Event{unmatchedEvent(r.Unmatched)}, nil)
	}
}

// replay applies an OpUnmatched record, or the OpDelivered or OpDead of an
// unmatched event, read back from the log.
func (t *events) replay(r Record) {
	switch {
	case r.Op == OpUnmatched && r.Unmatched != nil:
		t.add([]matcher.Event{unmatchedEvent(r.Unmatched)}, nil)
	case r.Op == OpDelivered || r.Op == OpDead:
		t.remove(r.ID)
	}
}

// sessionEvent is the final-status event of s, a finished session not yet
// notified; the caller holds a shard of s. While its event is undelivered
// a session is never notified, so the event's copy says NotNotified.
func sessionEvent(s *session) matcher.Event {
	v := s.view()
	v.Notified = matcher.NotNotified
	return matcher.Event{ID: matcher.EventID(v.ID, v.Status), Key: v.Key, Session: &v, At: v.FinishedAt}
}

// unmatchedEvent is the event of a message.unmatched record.
func unmatchedEvent(u *matcher.UnmatchedEvent) matcher.Event {
	return matcher.Event{ID: u.ID, Key: u.Key, Unmatched: u, At: u.At}
}

// ClaimEvents returns the oldest undelivered events that no lease holds,
// once the steps that made them are durable.
func (m *Store) ClaimEvents(ctx context.Context, lease time.Duration, limit int) ([]matcher.Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := m.opt.Now()
	t := &m.events
	t.mu.Lock()
	free := t.free(now, limit)
	until := now.Add(lease)
	for i := range free {
		c := &free[i]
		if c.u != nil {
			c.u.until = until
			c.commit = c.u.commit
			continue
		}
		c.d.until = unixNano(until)
		t.sessions.lease(c.d)
		c.commit, c.attempts = c.d.commit, c.d.attempts
	}
	t.mu.Unlock()
	// An event is handed out only once the change that made it is durable
	// (almost always already: the change's caller waited for it).
	out := make([]matcher.Event, 0, len(free))
	var failed error
	for _, c := range free {
		if c.commit != nil {
			if err := c.commit.Wait(); err != nil {
				t.mu.Lock()
				if c.u != nil {
					c.u.until = time.Time{}
				} else if e := t.sessions.get(c.s.id); e != nil {
					e.until = 0
				}
				t.mu.Unlock()
				failed = err
				continue
			}
		}
		if c.u != nil {
			out = append(out, c.u.ev)
			continue
		}
		home := &m.shards[c.s.id[0]]
		home.mu.Lock()
		ev := sessionEvent(c.s)
		home.mu.Unlock()
		ev.Attempts = c.attempts
		out = append(out, ev)
	}
	if len(out) == 0 && failed != nil {
		return nil, storeErr(failed)
	}
	return out, nil
}

// claimable is an event ClaimEvents may hand out: an unmatched event (u)
// or a session's (s).
type claimable struct {
	at       int64  // the event's At, unix ns
	id       string // the event's id; made for ties in at only
	u        *dueEvent
	s        *session
	d        *dueSession // s's entry; good while t.mu is held
	commit   Commit
	attempts int
}

func (c *claimable) eventID() string {
	if c.id == "" {
		if c.u != nil {
			c.id = c.u.ev.ID
		} else {
			c.id = matcher.EventID(idString(c.d.prefix, &c.s.id), c.s.status) // under t.mu: free's caller holds it
		}
	}
	return c.id
}

// free returns the limit oldest events no lease holds at now, ordered by
// (At, id). The caller holds t.mu (eventID reads the entries).
func (t *events) free(now time.Time, limit int) []claimable {
	var free []claimable
	for _, e := range t.due {
		if !now.Before(e.until) {
			free = append(free, claimable{at: e.ev.At.UnixNano(), u: e})
		}
	}
	ns := now.UnixNano()
	for e := range t.sessions.all() {
		if ns >= e.until {
			free = append(free, claimable{at: e.s.finished, s: e.s, d: e})
		}
	}
	slices.SortFunc(free, func(a, b claimable) int { return cmp.Compare(a.at, b.at) })
	// Ties in At are ordered by event id; the ids are made only for the
	// runs of equal At that reach into the first limit.
	for i := 0; i < len(free) && i < limit; {
		j := i + 1
		for j < len(free) && free[j].at == free[i].at {
			j++
		}
		if j-i > 1 {
			for k := i; k < j; k++ {
				free[k].eventID()
			}
			slices.SortFunc(free[i:j], func(a, b claimable) int { return cmp.Compare(a.id, b.id) })
		}
		i = j
	}
	return free[:min(limit, len(free))]
}

// AckEvent records the delivery durably, then forgets the event. An event
// whose session was dropped meanwhile (past the retention) is forgotten.
func (m *Store) AckEvent(ctx context.Context, ev matcher.Event, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := m.ackEvent(ev, dead)
	if c == nil {
		return nil
	}
	return storeErr(c.Wait())
}

var _ matcher.EventBatchAcker = (*Store)(nil) // the outbox acks in batches where the store can

// AckEvents acks each event as AckEvent does and then waits for them all:
// their log records share the log's next sync, where one AckEvent after
// the other would wait for a sync each (matcher.EventBatchAcker).
func (m *Store) AckEvents(ctx context.Context, evs []matcher.Event, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cs := make([]Commit, 0, len(evs))
	for _, ev := range evs {
		if c := m.ackEvent(ev, dead); c != nil {
			cs = append(cs, c)
		}
	}
	var first error
	for _, c := range cs {
		if err := c.Wait(); err != nil && first == nil {
			first = storeErr(err)
		}
	}
	return first
}

// ackEvent records an event's outcome and returns the commit to wait for,
// nil when there was nothing to record.
func (m *Store) ackEvent(ev matcher.Event, dead bool) Commit {
	op := OpDelivered
	if dead {
		op = OpDead
	}
	r := Record{Op: op, At: m.opt.Now().UTC(), ID: ev.ID}
	var c Commit
	switch {
	case ev.Unmatched != nil:
		t := &m.events
		t.mu.Lock()
		if _, ok := t.due[ev.ID]; ok {
			delete(t.due, ev.ID)
			c = m.journal(nil, r) // under t.mu: after the record that made it
		}
		t.mu.Unlock()
	case ev.Session != nil:
		r.ID = ev.Session.ID
		if !m.lookup(r.ID, func(sh *shard, s *session) {
			m.applyTo(sh, s, r)
			c = m.journal(sh, r)
		}) {
			if _, raw, ok := parseID(r.ID); ok {
				m.events.removeSession(raw)
			}
		}
	}
	return c
}

// DeferEvent moves the event's lease to until and keeps its attempt count.
func (m *Store) DeferEvent(ctx context.Context, ev matcher.Event, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &m.events
	t.mu.Lock()
	defer t.mu.Unlock()
	if ev.Session != nil {
		if _, raw, ok := parseID(ev.Session.ID); ok {
			if e := t.sessions.get(raw); e != nil && idString(e.prefix, &e.s.id) == ev.Session.ID {
				e.until, e.attempts = unixNano(until), ev.Attempts
			}
		}
		return nil
	}
	if e := t.due[ev.ID]; e != nil {
		e.until, e.ev.Attempts = until, ev.Attempts
	}
	return nil
}

// Events signals that new events may be claimable.
func (m *Store) Events() <-chan struct{} { return m.events.wake }

// storeErr leaves the store's own errors as they are; anything else comes
// from the journal: the change is not durable.
func storeErr(err error) error {
	if err == nil || errors.Is(err, matcher.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	for _, known := range []error{matcher.ErrNotFound, matcher.ErrNotPending, matcher.ErrCodeInUse, matcher.ErrInvalidCode, matcher.ErrIdempotencyReused, matcher.ErrCodeNotAllowed, matcher.ErrInvalidRoutes} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", matcher.ErrUnavailable, err)
}

// Undelivered returns how many events are not yet delivered (nor given up
// on), leased or not.
func (m *Store) Undelivered() int {
	m.events.mu.Lock()
	defer m.events.mu.Unlock()
	return len(m.events.due) + m.events.sessions.len()
}
