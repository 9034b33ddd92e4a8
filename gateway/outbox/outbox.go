// Package outbox delivers events to apps: it claims the events the store
// recorded with each state change, posts them under the egress rules and
// marks them done (data walks one way: the store records, the outbox delivers).
package outbox

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// The outbox tells apps about final statuses (verification.verified,
// .expired, .failed, .cancelled) and unmatched messages. The store records
// each event in the same atomic step as the change that causes it; the
// outbox claims events from the store under a lease (any replica may),
// delivers them and acks them, or hands a failed one back for its next try
// (DeferEvent), so a crash neither loses nor invents an event, and a
// replica killed mid-delivery only delays it. Event ids are deterministic,
// so a receiver can drop repeats.

// Outbox delivers the store's events; New makes one and Run runs it.
type Outbox struct {
	opt          Tuning
	store        matcher.Store
	keys         atomic.Pointer[map[string]*config.APIKey] // by name; setKeys replaces it
	client       *http.Client
	allowPrivate bool
	logUnsent    bool // Options.LogUnsent
	log          *slog.Logger
	now          func() time.Time
	base         func(matcher.Session) any // the event's data: the API's view of the session
	claimed      func([]matcher.Event)     // Options.OnClaim
	onAcked      func([]string)            // Options.OnAcked

	ackedMu    sync.Mutex
	acked      []string // ids acked since the last claim, for onAcked
	ackedSpare []string // the list passed before, emptied, for reuse

	delivered, attempts, dead prometheus.Counter
	unknownKey                prometheus.Counter // events handed back: API key not configured here
	unknown                   unknownLog

	mu       sync.Mutex
	queued   map[string]*delivery // events held: queued or in flight, by id
	dests    map[destKey]*destination
	inflight int
	perKey   map[string]int // attempts in flight per API key
	wake     chan struct{}

	claimEvery time.Duration   // claimEvery; tests that must see no timed claim set it longer
	fresh      []matcher.Event // a claim's first claims, for OnClaim: kept for the next (claims are made by one goroutine)
}

// destKey names a destination: events of one API key to one host.
type destKey struct{ key, host string }

// destination is one destination's queue, in-flight count and breaker. It
// exists while it has events queued or in flight.
type destination struct {
	id        destKey
	queue     deliveryHeap
	inflight  int
	cb        *gobreaker.CircuitBreaker[struct{}]
	openUntil time.Time // the breaker is open until about then
}

// breakerOpen is how long a destination's breaker stays open before one
// probe may pass.
const breakerOpen = 30 * time.Second

// eventLease is how long a claimed event is held before another replica
// may claim it; the outbox renews it while the event waits in its queue.
const eventLease = 30 * time.Second

// claimEvery is how often, on average, the outbox looks for claimable
// events without a wakeup: retries falling due, and events of a replica
// that died. Each interval is jittered (±50%), so replicas do not claim in
// a fixed order: one that hands events of an unknown API key back does not
// take them again, due after due, just before a replica that knows the key.
const claimEvery = time.Second

// nextClaim is the jittered wait before the next claim.
func (o *Outbox) nextClaim() time.Duration {
	return time.Duration(float64(o.claimEvery) * (0.5 + rand.Float64()))
}

// delivery is one claimed event on its way.
type delivery struct {
	ev         matcher.Event
	next       time.Time
	leaseUntil time.Time
	inflight   bool // an attempt owns ev (o.mu guards the flag)
}

func (d *delivery) key() string { return d.ev.ID }

// apiKey is the name of the API key the event belongs to.
func (d *delivery) apiKey() string { return d.ev.Key }

// since is when the event came to be: its age decides when it is dead.
func (d *delivery) since() time.Time { return d.ev.At }

// New returns an outbox over opt.Store; its metrics are registered with
// opt.Registerer. It delivers nothing until Run.
func New(opt Options) *Outbox {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	o := &Outbox{
		opt: opt.Tuning.WithDefaults(), store: opt.Store, client: newEgressClient(opt.AllowPrivate), allowPrivate: opt.AllowPrivate, logUnsent: opt.LogUnsent,
		log: opt.Logger, now: opt.Now, base: opt.Data, claimed: opt.OnClaim, onAcked: opt.OnAcked,
		queued: map[string]*delivery{}, dests: map[destKey]*destination{}, perKey: map[string]int{}, wake: make(chan struct{}, 1),
		claimEvery: claimEvery,
		delivered:  prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_events_delivered_total", Help: "Events accepted by the app."}),
		attempts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_event_attempts_failed_total", Help: "Event deliveries that failed and will be retried."}),
		dead:       prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_events_dead_total", Help: "Events given up on after their maximum age."}),
		unknownKey: prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_events_unknown_key_total",
			Help: "Claims of an event whose API key this process does not know: handed back undelivered for a replica, or a reload, that knows it."}),
	}
	o.SetKeys(opt.Keys)
	if opt.Registerer == nil {
		return o
	}
	opt.Registerer.MustRegister(o.delivered, o.attempts, o.dead, o.unknownKey,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mogate_outbox_backlog", Help: "Events this process holds for delivery (queued or in flight)."},
			func() float64 { n, _ := o.backlog(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mogate_outbox_oldest_age_seconds", Help: "Age of the oldest event this process holds for delivery; 0 when none."},
			func() float64 { _, age := o.backlog(); return age.Seconds() }))
	return o
}

// SetKeys replaces the API keys events are signed and addressed with (a
// reload); events already queued use the new ones from their next attempt.
func (o *Outbox) SetKeys(keys []config.APIKey) {
	m := make(map[string]*config.APIKey, len(keys))
	for i := range keys {
		k := keys[i]
		m[k.Name] = &k
	}
	o.keys.Store(&m)
}

// Key returns the API key named name that events are signed and addressed
// with, or nil.
func (o *Outbox) Key(name string) *config.APIKey { return (*o.keys.Load())[name] }

// BreakerState is the state of the circuit breaker of the destination of
// API key key on host; closed when there is no such destination.
func (o *Outbox) BreakerState(key, host string) gobreaker.State {
	o.mu.Lock()
	defer o.mu.Unlock()
	if dst := o.dests[destKey{key, host}]; dst != nil {
		return dst.cb.State()
	}
	return gobreaker.StateClosed
}

// backlog returns how many events are held and the age of the oldest:
// O(events held), never O(sessions).
func (o *Outbox) backlog() (int, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var oldest time.Time
	for _, d := range o.queued {
		if oldest.IsZero() || d.since().Before(oldest) {
			oldest = d.since()
		}
	}
	if oldest.IsZero() {
		return 0, 0
	}
	return len(o.queued), o.now().Sub(oldest)
}

// dest returns the destination named id, creating it; o.mu must be held.
func (o *Outbox) dest(id destKey) *destination {
	dst := o.dests[id]
	if dst == nil {
		dst = &destination{id: id, cb: gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: id.key + " " + id.host, MaxRequests: 1, Timeout: breakerOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
			OnStateChange: func(_ string, from, to gobreaker.State) {
				o.log.Warn("event destination breaker", "key", id.key, "destination_host", id.host, "from", from.String(), "to", to.String())
			},
		})}
		o.dests[id] = dst
	}
	return dst
}

func (o *Outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// destination is the event's session's callback_url, else its API key's
// webhook_url.
func (o *Outbox) destination(ev matcher.Event) string {
	if s := ev.Session; s != nil && s.Callback != "" {
		return s.Callback
	}
	if k := o.Key(ev.Key); k != nil {
		return k.WebhookURL
	}
	return ""
}

// ack records, durably, that an event was delivered or is dead.
func (o *Outbox) ack(ctx context.Context, ev matcher.Event, dead bool) {
	if err := o.store.AckEvent(ctx, ev, dead); err != nil {
		o.log.Error("event outcome not recorded; it will be sent again", "event", ev.ID, "dead", dead, "err", err)
		return
	}
	o.noteAcked(ev)
}

// noteAcked keeps the ids of acked events for onAcked.
func (o *Outbox) noteAcked(evs ...matcher.Event) {
	if o.onAcked == nil {
		return
	}
	o.ackedMu.Lock()
	for _, ev := range evs {
		o.acked = append(o.acked, ev.ID)
	}
	o.ackedMu.Unlock()
}

// passAcked hands the ids acked since the last call to onAcked; the
// claiming goroutine calls it before it claims.
func (o *Outbox) passAcked() {
	if o.onAcked == nil {
		return
	}
	o.ackedMu.Lock()
	ids := o.acked
	o.acked, o.ackedSpare = o.ackedSpare[:0], nil
	o.ackedMu.Unlock()
	if len(ids) == 0 {
		return
	}
	o.onAcked(ids)
	clear(ids)
	o.ackedMu.Lock()
	if o.ackedSpare == nil && cap(ids) <= claimBatch*claimRounds {
		o.ackedSpare = ids[:0]
	}
	o.ackedMu.Unlock()
}

// Run claims and delivers events until ctx ends. It returns once the
// attempts in flight have ended.
func (o *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTimer(o.nextClaim())
	defer tick.Stop()
	more := o.claim(ctx)
	for {
		wait := o.dispatch(ctx, &wg)
		if more && o.room() {
			wait = 0 // the rest of a backlog: no wakeup may come for it
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.store.Events():
			more = o.claim(ctx)
		case <-tick.C:
			more = o.claim(ctx)
			o.renew(ctx)
			tick.Reset(o.nextClaim())
		case <-o.wake:
		case <-t.C:
			if more && o.room() {
				more = o.claim(ctx)
			}
		}
		t.Stop()
	}
}

// dispatch starts the due attempts that the limits allow, taking one per
// destination in turn, oldest due first, and returns how long until the
// next delivery falls due. An attempt that ends wakes Run again, so a
// destination held back by a limit is looked at when a slot frees up.
func (o *Outbox) dispatch(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	wait := time.Hour
	var ready []*destination
	for _, dst := range o.dests {
		if len(dst.queue) == 0 {
			continue
		}
		if due := o.due(dst); due.After(now) {
			wait = min(wait, due.Sub(now))
		} else {
			ready = append(ready, dst)
		}
	}
	slices.SortFunc(ready, func(a, b *destination) int { return o.due(a).Compare(o.due(b)) })
	keyLimit := o.perKeyLimit()
	for started := true; started && o.inflight < o.opt.Workers; {
		started = false
		for _, dst := range ready {
			if o.inflight >= o.opt.Workers || o.perKey[dst.id.key] >= keyLimit || dst.inflight >= o.limit(dst) ||
				len(dst.queue) == 0 || o.due(dst).After(now) {
				continue
			}
			d := heap.Pop(&dst.queue).(*delivery)
			d.inflight = true
			dst.inflight++
			o.perKey[dst.id.key]++
			o.inflight++
			started = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				o.attempt(ctx, d, dst)
			}()
		}
	}
	return wait
}

// due is when the first event of dst's non-empty queue may be tried. While
// the breaker is open nothing is tried (an attempt would be turned away at
// once, over and over), except an event past MaxAge, to be found dead on
// time. o.mu must be held.
func (o *Outbox) due(dst *destination) time.Time {
	d := dst.queue[0]
	wake := d.since().Add(o.opt.MaxAge)
	if dst.openUntil.Before(wake) {
		wake = dst.openUntil
	}
	if wake.After(d.next) {
		return wake
	}
	return d.next
}

// limit is how many attempts dst may have in flight: PerDestination while
// its breaker is closed, else one (the probe). o.mu must be held.
func (o *Outbox) limit(dst *destination) int {
	if dst.cb.State() != gobreaker.StateClosed {
		return 1
	}
	return o.opt.PerDestination
}

// attempt delivers once and records or reschedules the outcome.
func (o *Outbox) attempt(ctx context.Context, d *delivery, dst *destination) {
	dest := o.destination(d.ev)
	err := o.send(ctx, d, dest, dst.cb)
	switch {
	case err == nil:
		o.ack(ctx, d.ev, false)
		o.delivered.Inc()
		o.finish(d, dst, false)
		return
	case errors.Is(err, errUnknownKey):
		// The key was removed since the claim: not this process's event.
		o.hold(ctx, d)
		o.finish(d, dst, false)
		return
	case errors.Is(err, errNoEvent):
		o.ack(ctx, d.ev, false) // nothing to send for it, ever
		o.finish(d, dst, false)
		return
	case errors.Is(err, errRefusedDestination) || o.now().Sub(d.since()) >= o.opt.MaxAge:
		o.dead.Inc()
		o.log.Error("event dead: not delivered", "event", d.key(), "destination_host", hostOf(dest), "attempts", d.ev.Attempts+1, "err", err)
		o.ack(ctx, d.ev, true)
		o.finish(d, dst, false)
		return
	case errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests):
		// Turned away by the breaker: keep it queued; due waits for the probe.
		d.next = o.now().Add(o.backoff(0))
		o.finish(d, dst, true)
		return
	}
	d.ev.Attempts++
	o.attempts.Inc()
	o.log.Warn("event delivery failed; will retry", "event", d.key(), "destination_host", hostOf(dest), "attempt", d.ev.Attempts, "err", err)
	// Handed back to the store for its next try, which any replica may make.
	if err := o.store.DeferEvent(ctx, d.ev, o.now().Add(o.backoff(d.ev.Attempts))); err != nil {
		o.log.Warn("could not hand a failed event back; it is claimable when its lease ends", "event", d.key(), "err", err)
	}
	o.finish(d, dst, false)
}

// finish ends an attempt: it queues d again when requeue, else forgets it,
// and drops the destination once it has nothing left to do.
func (o *Outbox) finish(d *delivery, dst *destination, requeue bool) {
	o.mu.Lock()
	d.inflight = false
	dst.inflight--
	o.perKey[dst.id.key]--
	o.inflight--
	if dst.cb.State() == gobreaker.StateOpen {
		dst.openUntil = o.now().Add(breakerOpen)
	}
	if requeue {
		heap.Push(&dst.queue, d)
	} else {
		delete(o.queued, d.key())
	}
	// A destination is forgotten once idle with a healthy breaker: one that
	// has been failing keeps its breaker for the events that come back.
	if dst.inflight == 0 && len(dst.queue) == 0 && dst.cb.State() == gobreaker.StateClosed && dst.cb.Counts().ConsecutiveFailures == 0 {
		delete(o.dests, dst.id)
	}
	if o.perKey[dst.id.key] == 0 {
		delete(o.perKey, dst.id.key)
	}
	o.mu.Unlock()
	o.kick()
}

// backoff is BaseDelay·2^(attempt-1), capped at MaxDelay, ±20% jitter;
// attempt 0 (a breaker that was open) waits BaseDelay.
func (o *Outbox) backoff(attempt int) time.Duration {
	d := o.opt.BaseDelay
	for i := 1; i < attempt && d < o.opt.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, o.opt.MaxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// send makes one attempt through the destination's breaker. Timeout bounds
// all of it: connecting, the answer and reading up to 64 KiB of its body.
// Only a 2xx whose body was read counts as delivered.
func (o *Outbox) send(ctx context.Context, d *delivery, dest string, cb *gobreaker.CircuitBreaker[struct{}]) error {
	ctx, cancel := context.WithTimeout(ctx, o.opt.Timeout)
	defer cancel()
	req, err := o.request(ctx, d, dest)
	if err != nil {
		return err
	}
	if err := checkDestination(dest, o.allowPrivate); err != nil {
		return err
	}
	_, err = cb.Execute(func() (struct{}, error) {
		resp, err := o.client.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
			return struct{}{}, fmt.Errorf("reading the answer: %w", err)
		}
		switch {
		case resp.StatusCode/100 == 3:
			return struct{}{}, fmt.Errorf("receiver answered %d; redirects are not followed", resp.StatusCode)
		case resp.StatusCode/100 != 2:
			return struct{}{}, fmt.Errorf("receiver answered %d", resp.StatusCode)
		}
		return struct{}{}, nil
	})
	return err
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

type deliveryHeap []*delivery

func (h deliveryHeap) Len() int           { return len(h) }
func (h deliveryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h deliveryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)        { *h = append(*h, x.(*delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
