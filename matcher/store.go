package matcher

import (
	"context"
	"errors"
	"time"
)

// Store is where verification sessions live, behind the gateway: the
// memory+WAL store of one node (package matcher/memstore), or Redis shared by several
// replicas (package matcher/redisstore). Every store passes the behavioural
// suite in matcher/storetest: the matching rules (docs/matching.md), attempts, supersede
// within one API key, capture guesses, expiry, dedupe, idempotency, nonces
// and events.
//
// Every method takes a context and returns only once its change is durable
// (fsync'd in the log, or acknowledged by Redis). A store that cannot reach
// its storage returns an error wrapping ErrUnavailable; nothing was
// acknowledged then (a write may still stand, e.g. one Redis applied but did
// not replicate within redis_wait_timeout: every write is safe to retry). Status changes reach watchers through wakeups (Wait),
// never through callbacks.
type Store interface {
	// Create makes a pending session (see CreateRequest for the rules).
	Create(ctx context.Context, req CreateRequest) (s Session, replayed bool, err error)
	// LookupIdempotent returns the session an API key created with an
	// Idempotency-Key, if it is still held.
	LookupIdempotent(ctx context.Context, key, idemKey string) (Session, bool, error)
	// Get returns a session by id (ErrNotFound); a pending session past its
	// expiry reads as expired.
	Get(ctx context.Context, id string) (Session, error)
	// PendingFor returns the pending sessions, of every API key, that
	// expect a message from sender on each receiving number of tos (on any
	// of their routes): in the order of tos, oldest first per number, each
	// session once. The caller filters by key. A store on the network reads
	// them in one round trip (two when a number has routes of sessions
	// homed elsewhere).
	PendingFor(ctx context.Context, sender string, tos []string) ([]Session, error)
	// ByPageToken returns the session of a hosted page token (ErrNotFound).
	ByPageToken(ctx context.Context, token string) (Session, error)
	// Cancel cancels a pending session (ErrNotFound, ErrNotPending).
	Cancel(ctx context.Context, id string) (Session, error)
	// Wait blocks until the session is no longer pending, ctx ends or the
	// session expires, and returns it then. A lost wakeup costs latency,
	// never correctness: a store whose wakeups can be lost re-reads the
	// session every few seconds without one.
	Wait(ctx context.Context, id string) (Session, error)
	// Ingest matches a message once per (provider, message id): a
	// redelivery returns the first outcome with Duplicate set.
	Ingest(ctx context.Context, msg Message, opt IngestOptions) (Outcome, error)
	// SpendNonce records a provider request nonce; fresh is false when it
	// was spent before (within the retention window).
	SpendNonce(ctx context.Context, provider, nonce string) (fresh bool, err error)
	// PendingByNumber counts pending sessions per receiving number in
	// O(numbers): a session counts under each number of its routes.
	PendingByNumber(ctx context.Context) (map[string]int, error)

	// ClaimEvents returns up to limit undelivered events that nobody holds,
	// and leases them to the caller for lease: until then no other caller
	// gets them. Events come to be with the final status that causes them,
	// in the same atomic step. A replica that dies mid-delivery loses its
	// leases, and another replica claims the events.
	ClaimEvents(ctx context.Context, lease time.Duration, limit int) ([]Event, error)
	// AckEvent records that an event was delivered (or, with dead, given up
	// on): it is never claimed again.
	AckEvent(ctx context.Context, ev Event, dead bool) error
	// DeferEvent sets the lease of an event the caller claimed to end at
	// until and records ev.Attempts: a failed delivery is handed back to be
	// claimed again (by any replica) at its next try, and a holder renews
	// the lease of an event it still queues. An acked event stays acked.
	DeferEvent(ctx context.Context, ev Event, until time.Time) error
	// Events signals, without blocking the store, that new events may be
	// claimable: one made by this process, or announced by another.
	Events() <-chan struct{}

	// Err returns why the store cannot serve now (nil when it can): /readyz.
	Err(ctx context.Context) error
	// Run does the store's background work (expiry, snapshots, wakeups)
	// until ctx ends.
	Run(ctx context.Context)
	// Close releases the store; a durable one takes a final snapshot.
	Close() error
}

// ErrUnavailable is wrapped by a store that cannot reach its storage (or
// whose write was not replicated in time): the caller answers 503; nothing
// was acknowledged, though the write may stand, so retries must be safe.
var ErrUnavailable = errors.New("matcher: storage unavailable")

// Event is one outbound event: a session's final status
// (verification.verified, .expired, .failed, .cancelled), or an unmatched
// message for one API key (message.unmatched).
type Event struct {
	ID        string          // evt_…, deterministic: the same on every delivery
	Key       string          // the API key it belongs to
	Session   *Session        // verification events: the session at its final status
	Unmatched *UnmatchedEvent // message.unmatched
	At        time.Time       // when it came to be: its age decides when it is dead
	Attempts  int             // failed deliveries so far (kept by DeferEvent)
}

// Type is the event's type as apps see it.
func (e Event) Type() string {
	if e.Unmatched != nil {
		return "message.unmatched"
	}
	return "verification." + e.Session.Status.String()
}

// EventBatchAcker is a Store that can record the outcomes of several
// events in one step: what AckEvent does for each, waiting once for all of
// them to be durable. The outbox acks the events of a claim that have
// nowhere to go with it when the store has it (a wrapper around a store
// hides it: the outbox then acks side by side). An error means some of
// them may not be durably acked, as AckEvent's does: delivered again
// (after a restart, on the memory store).
type EventBatchAcker interface {
	AckEvents(ctx context.Context, evs []Event, dead bool) error
}
