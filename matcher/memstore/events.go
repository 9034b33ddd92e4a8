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

// events is the store's event table: every undelivered event, by id — the
// final-status event of each finished session not yet notified, and each
// message.unmatched event not yet delivered. It is filled where the state
// changes: apply queues a session's event on its shard (shard.fresh) in the
// same step that makes the status final, and the journal call that makes
// that step durable moves it here with its commit; an unmatched event is
// added with the record that journals it. Recovery fills it through the
// same apply. Leases are held in memory: one process owns the store.
type events struct {
	mu   sync.Mutex
	due  map[string]*dueEvent
	wake chan struct{}
}

type dueEvent struct {
	ev     matcher.Event
	until  time.Time // leased until then
	commit Commit    // the journal's promise for the step that made it; nil once durable
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

// signal wakes a claimer without blocking.
func (t *events) signal() {
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

// dropSessionsBefore forgets the final-status events of sessions that
// finished before since: after a restart they are no longer claimed.
func (t *events) dropSessionsBefore(since time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, e := range t.due {
		if e.ev.Session != nil && !e.ev.At.After(since) {
			delete(t.due, id)
		}
	}
}

// unmatched returns the message.unmatched events in the table. The caller
// holds t.mu.
func (t *events) unmatched() []*matcher.UnmatchedEvent {
	var out []*matcher.UnmatchedEvent
	for _, e := range t.due {
		if e.ev.Unmatched != nil {
			out = append(out, e.ev.Unmatched)
		}
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
		e.bytes(encodeRecord(nil, &r))
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

// sessionEvent is the final-status event of s.
func sessionEvent(s *session) matcher.Event {
	v := s.view()
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
	var free []*dueEvent
	for _, e := range t.due {
		if !now.Before(e.until) {
			free = append(free, e)
		}
	}
	slices.SortFunc(free, func(a, b *dueEvent) int {
		return cmp.Or(a.ev.At.Compare(b.ev.At), cmp.Compare(a.ev.ID, b.ev.ID))
	})
	free = free[:min(limit, len(free))]
	evs := make([]matcher.Event, len(free))
	commits := make([]Commit, len(free))
	for i, e := range free {
		e.until = now.Add(lease)
		evs[i], commits[i] = e.ev, e.commit
	}
	t.mu.Unlock()
	// An event is handed out only once the change that made it is durable
	// (almost always already: the change's caller waited for it).
	out := evs[:0]
	var failed error
	for i, e := range free {
		if c := commits[i]; c != nil {
			if err := c.Wait(); err != nil {
				t.mu.Lock()
				e.until = time.Time{}
				t.mu.Unlock()
				failed = err
				continue
			}
		}
		out = append(out, evs[i])
	}
	if len(out) == 0 && failed != nil {
		return nil, storeErr(failed)
	}
	return out, nil
}

// AckEvent records the delivery durably, then forgets the event. An event
// whose session was dropped meanwhile (past the retention) is forgotten.
func (m *Store) AckEvent(ctx context.Context, ev matcher.Event, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
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
			m.events.remove(ev.ID)
		}
	}
	if c == nil {
		return nil
	}
	return storeErr(c.Wait())
}

// DeferEvent moves the event's lease to until and keeps its attempt count.
func (m *Store) DeferEvent(ctx context.Context, ev matcher.Event, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &m.events
	t.mu.Lock()
	if e := t.due[ev.ID]; e != nil {
		e.until, e.ev.Attempts = until, ev.Attempts
	}
	t.mu.Unlock()
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
	return len(m.events.due)
}
