package outbox

import (
	"log/slog"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure an Outbox.
type Options struct {
	Store        matcher.Store    // where events are claimed, acked and deferred
	Keys         []config.APIKey  // events are signed and addressed with these; SetKeys replaces them
	AllowPrivate bool             // events.allow_private_destinations: lifts the egress rules
	Logger       *slog.Logger     // nil: discard
	Now          func() time.Time // nil: time.Now
	Registerer   prometheus.Registerer
	// Data is an event's data: the API's view of the session.
	Data func(matcher.Session) any
	// OnClaim, when set, sees each event when it is claimed before any
	// failed delivery: once across replicas, or again when its lease ran
	// out (the replica holding it died, or could not renew it), so the
	// observer drops repeats by event id (the gateway's does). An event
	// of an API key the claiming process does not know is seen when a
	// process that knows the key claims it, or when it dies. A claim's
	// events come in one call (the observer's store lookups share a round
	// trip), before the claim queues or acks any of them (an event of the
	// claim that this process still holds, its lease having run out,
	// may be in flight: a repeat, which the observer drops). The slice is
	// the outbox's, reused by the next claim: valid only during the call.
	OnClaim func([]matcher.Event)
	// OnAcked, when set, is told the ids of the events whose outcome was
	// recorded (delivered or dead): never claimed again, so an observer
	// of claims need not remember them. It is called by the goroutine that
	// claims, before a claim, with the ids acked since the one before: an
	// event a claim returned is observed by that claim before its id can
	// be passed here, whenever another goroutine acked it.
	OnAcked func(ids []string)
	// LogUnsent logs each event that has no destination (no callback_url,
	// no webhook_url), as it would have been signed, instead of dropping
	// it silently: dev mode, where no app listens, shows its events so.
	LogUnsent bool
	Tuning    Tuning
}

// Tuning tunes delivery. Events are queued per destination, an (API key,
// destination host) pair, and each destination has its own circuit breaker
// and at most PerDestination attempts in flight; one API key holds at most
// half of the Workers slots. A destination that hangs or fails thus delays
// its own events only: another finds a free slot.
type Tuning struct {
	Workers        int           // attempts in flight, all destinations together; 32 when 0
	PerDestination int           // attempts in flight per destination; 4 when 0
	BaseDelay      time.Duration // first retry after about this; 1s when 0 (jittered ±20%)
	MaxDelay       time.Duration // retries back off up to this; 1h when 0
	MaxAge         time.Duration // give up (dead) this long after the status; 24h when 0
	Timeout        time.Duration // bounds one attempt, reading the answer included; 10s when 0
	// UnknownKeyRetry is how long an event whose API key this process
	// does not know is handed back for, undelivered, before it is claimed
	// again (here or by another replica); 30s when 0.
	UnknownKeyRetry time.Duration
}

// WithDefaults returns t with each zero field set to its default.
func (t Tuning) WithDefaults() Tuning {
	if t.Workers == 0 {
		t.Workers = 32
	}
	if t.PerDestination == 0 {
		t.PerDestination = 4
	}
	if t.BaseDelay == 0 {
		t.BaseDelay = time.Second
	}
	if t.MaxDelay == 0 {
		t.MaxDelay = time.Hour
	}
	if t.MaxAge == 0 {
		t.MaxAge = 24 * time.Hour
	}
	if t.Timeout == 0 {
		t.Timeout = 10 * time.Second
	}
	if t.UnknownKeyRetry == 0 {
		t.UnknownKeyRetry = 30 * time.Second
	}
	return t
}
