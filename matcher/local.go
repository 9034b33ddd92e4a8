package matcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Store returns the matcher as a Store for one process (store: memory):
// the methods of the matcher taking a context, and an event outbox over the
// events the matcher derives — finished sessions not yet notified and
// pending message.unmatched events. Leases are held in memory: one process
// owns the matcher and its data directory. Every call returns the same
// Store.
//
// From the first call on, the matcher tells the store of every final
// status and every unmatched event it makes durable; the events found
// undelivered then (after a restart) are claimable too, those of sessions
// that finished within Options.EventMaxAge.
func (m *Matcher) Store() Store {
	m.storeOnce.Do(func() {
		l := &local{m: m, wake: make(chan struct{}, 1), due: map[string]*localEvent{}}
		// Told first, scanned second: an event made meanwhile is in both,
		// and the map keeps it once.
		m.outbox.Store(l)
		maxAge := m.opt.EventMaxAge
		if maxAge == 0 {
			maxAge = 24 * time.Hour
		}
		for _, s := range m.Unnotified(m.opt.Now().Add(-maxAge)) {
			l.finished(s)
		}
		l.unmatched(m.PendingUnmatched())
	})
	return m.outbox.Load()
}

// local is Matcher.Store.
type local struct {
	m    *Matcher
	wake chan struct{}
	mu   sync.Mutex
	due  map[string]*localEvent // by event id: undelivered events
}

type localEvent struct {
	ev    Event
	until time.Time // leased until then
}

var _ Store = (*local)(nil)

// finished records the final-status event of session s.
func (l *local) finished(s Session) {
	if !s.Status.Final() || s.Notified != NotNotified {
		return
	}
	l.add(Event{ID: EventID(s.ID, s.Status), Key: s.Key, Session: &s, At: s.FinishedAt})
}

// unmatched records message.unmatched events.
func (l *local) unmatched(es []UnmatchedEvent) {
	for i := range es {
		e := es[i]
		l.add(Event{ID: e.ID, Key: e.Key, Unmatched: &e, At: e.At})
	}
}

func (l *local) add(ev Event) {
	l.mu.Lock()
	if _, ok := l.due[ev.ID]; !ok {
		l.due[ev.ID] = &localEvent{ev: ev}
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// storeErr leaves the matcher's own errors as they are; anything else comes
// from the journal: the change is not durable.
func storeErr(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	for _, known := range []error{ErrNotFound, ErrNotPending, ErrCodeInUse, ErrInvalidCode, ErrIdempotencyReused, ErrCodeNotAllowed} {
		if errors.Is(err, known) {
			return err
		}
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (l *local) Create(ctx context.Context, req CreateRequest) (Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, false, err
	}
	s, replayed, err := l.m.Create(req)
	return s, replayed, storeErr(err)
}

func (l *local) LookupIdempotent(ctx context.Context, key, idemKey string) (Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, false, err
	}
	s, ok := l.m.LookupIdempotent(key, idemKey)
	return s, ok, nil
}

func (l *local) PendingFor(ctx context.Context, sender string, tos []string) ([]Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Session
	for _, to := range tos {
		out = append(out, l.m.PendingFor(to, sender)...)
	}
	return out, nil
}

func (l *local) Get(ctx context.Context, id string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	return l.m.Get(id)
}

func (l *local) ByPageToken(ctx context.Context, token string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	return l.m.ByPageToken(token)
}

func (l *local) Cancel(ctx context.Context, id string) (Session, error) {
	if err := ctx.Err(); err != nil {
		return Session{}, err
	}
	s, err := l.m.Cancel(id)
	return s, storeErr(err)
}

func (l *local) Wait(ctx context.Context, id string) (Session, error) {
	return l.m.Wait(ctx, id)
}

func (l *local) Ingest(ctx context.Context, msg Message, opt IngestOptions) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	o, err := l.m.Ingest(msg, opt)
	return o, storeErr(err)
}

func (l *local) SpendNonce(ctx context.Context, provider, nonce string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	fresh, err := l.m.SpendNonce(provider, nonce)
	return fresh, storeErr(err)
}

func (l *local) PendingByNumber(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return l.m.PendingByNumber(), nil
}

// ClaimEvents returns the oldest undelivered events that no lease holds.
func (l *local) ClaimEvents(ctx context.Context, lease time.Duration, limit int) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := l.m.opt.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var free []*localEvent
	for _, e := range l.due {
		if !now.Before(e.until) {
			free = append(free, e)
		}
	}
	slices.SortFunc(free, func(a, b *localEvent) int {
		if c := a.ev.At.Compare(b.ev.At); c != 0 {
			return c
		}
		return cmpString(a.ev.ID, b.ev.ID)
	})
	out := make([]Event, 0, min(limit, len(free)))
	for _, e := range free[:min(limit, len(free))] {
		e.until = now.Add(lease)
		out = append(out, e.ev)
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// AckEvent records the delivery durably, then forgets the event. An event
// whose session was dropped meanwhile (past the retention) is forgotten.
func (l *local) AckEvent(ctx context.Context, ev Event, dead bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	if ev.Unmatched != nil {
		err = l.m.MarkUnmatchedDone(ev.ID, dead)
	} else if ev.Session != nil {
		err = l.m.MarkNotified(ev.Session.ID, dead)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return storeErr(err)
	}
	l.mu.Lock()
	delete(l.due, ev.ID)
	l.mu.Unlock()
	return nil
}

// DeferEvent moves the event's lease to until and keeps its attempt count.
func (l *local) DeferEvent(ctx context.Context, ev Event, until time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if e := l.due[ev.ID]; e != nil {
		e.until, e.ev.Attempts = until, ev.Attempts
	}
	l.mu.Unlock()
	return nil
}

func (l *local) Events() <-chan struct{} { return l.wake }

func (l *local) Err(context.Context) error {
	if err := l.m.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Run expires sessions (and, durable, snapshots) until ctx ends.
func (l *local) Run(ctx context.Context) { l.m.Run(ctx, 250*time.Millisecond) }

func (l *local) Close() error { return l.m.Close() }
