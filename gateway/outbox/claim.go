package outbox

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher"
)

// claimBatch is how many events one claim asks the store for.
const claimBatch = 256

// claimRounds bounds the batches one claim takes in a row: a full batch
// that held events of unknown API keys is followed by another at once, so
// a backlog of such events does not crowd out the events this process can
// deliver.
const claimRounds = 8

// claim takes the claimable events from the store into the destinations'
// queues.
func (o *Outbox) claim(ctx context.Context) {
	for range claimRounds {
		if n, held := o.claimOnce(ctx); n < claimBatch || held == 0 {
			return
		}
	}
}

// claimOnce claims one batch and returns how many events it claimed and
// how many of them it handed back because their API key is unknown here.
// The events of a known key with nowhere to go are acked at once, together
// (ackUnsent): they are collected as they came, with no delivery made for
// each.
func (o *Outbox) claimOnce(ctx context.Context) (n, held int) {
	o.passAcked() // before the claim: none of them can be in it
	evs, err := o.store.ClaimEvents(ctx, eventLease, claimBatch)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("could not claim events; will retry", "err", err)
		}
		return 0, 0
	}
	now := o.now()
	var unsent []matcher.Event
	for _, ev := range evs {
		if o.Key(ev.Key) == nil {
			o.hold(ctx, o.delivery(ev, now))
			held++
			continue
		}
		if o.claimed != nil && ev.Attempts == 0 {
			o.claimed(ev)
		}
		dest := o.destination(ev)
		if dest == "" {
			if o.logUnsent {
				o.logNoDestination(ctx, o.delivery(ev, now))
			}
			if unsent == nil {
				unsent = make([]matcher.Event, 0, len(evs))
			}
			unsent = append(unsent, ev)
			continue
		}
		o.mu.Lock()
		if o.queued[ev.ID] == nil {
			d := o.delivery(ev, now)
			o.queued[d.key()] = d
			dst := o.dest(destKey{d.apiKey(), strings.ToLower(hostOf(dest))})
			heap.Push(&dst.queue, d)
		}
		o.mu.Unlock()
	}
	if len(evs) > 0 {
		o.kick()
	}
	o.ackUnsent(ctx, unsent)
	return len(evs), held
}

// delivery is a claimed event on its way, due now, its lease running from
// now.
func (o *Outbox) delivery(ev matcher.Event, now time.Time) *delivery {
	return &delivery{ev: ev, next: now, leaseUntil: now.Add(eventLease)}
}

// ackUnsent acks the events that have nowhere to go, together, and
// returns when each is acked. An ack returns once it is durable, so acked
// one after the other each would wait for a log sync of its own, far
// slower than a busy gateway verifies. Acked together they share the
// store's next sync: in one AckEvents call where the store acks in batches
// (the memory store), else side by side (Redis), at most unsentAcks in
// flight: on Redis Cluster each holds a connection of the pool the API
// shares (for up to redis_wait_timeout with redis_wait_replicas); on one
// server they join the store's batches of calls, which hold few.
func (o *Outbox) ackUnsent(ctx context.Context, evs []matcher.Event) {
	switch len(evs) {
	case 0:
		return
	case 1:
		o.ack(ctx, evs[0], false)
		return
	}
	if b, ok := o.store.(matcher.EventBatchAcker); ok {
		if err := b.AckEvents(ctx, evs, false); err != nil {
			o.log.Error("outcomes of events with nowhere to go not recorded; they may be claimed again", "events", len(evs), "err", err)
			return
		}
		o.noteAcked(evs...)
		return
	}
	slots := make(chan struct{}, o.unsentAcks())
	var wg sync.WaitGroup
	for _, ev := range evs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			o.ack(ctx, ev, false)
		})
	}
	wg.Wait()
}

// perKeyLimit is how many attempts one API key may have in flight: half
// the workers' slots.
func (o *Outbox) perKeyLimit() int { return max(1, o.opt.Workers/2) }

// unsentAcks is how many acks of events with nowhere to go may be in
// flight together, where the store does not ack in batches: as many as
// one API key's deliveries.
func (o *Outbox) unsentAcks() int { return o.perKeyLimit() }

// renew extends the leases of events still waiting in a queue (behind a
// busy or broken destination), so no other replica claims them meanwhile.
func (o *Outbox) renew(ctx context.Context) {
	now := o.now()
	var due []matcher.Event
	o.mu.Lock()
	for _, d := range o.queued {
		// An event in flight is the attempt's: it acks or defers it.
		if !d.inflight && d.leaseUntil.Sub(now) < eventLease/2 {
			d.leaseUntil = now.Add(eventLease)
			due = append(due, d.ev)
		}
	}
	o.mu.Unlock()
	for _, ev := range due {
		if err := o.store.DeferEvent(ctx, ev, now.Add(eventLease)); err != nil && ctx.Err() == nil {
			o.log.Warn("could not renew an event lease", "event", ev.ID, "err", err)
		}
	}
}
