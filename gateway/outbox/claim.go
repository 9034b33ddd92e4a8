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

// claimRounds bounds the batches one claim takes in a row. A full batch
// whose events were all dealt with in the claim (acked with nowhere to go,
// or handed back for an unknown API key) is followed by another at once:
// a backlog, with no wakeup to come (the verifications behind it are
// over), would otherwise wait a claimEvery per batch, and a backlog of
// unknown keys would crowd out the events this process can deliver. A
// full batch that queued deliveries is followed by the next once fewer
// than a batch wait here (Run).
const claimRounds = 8

// claim takes the claimable events from the store into the destinations'
// queues, and says whether the store may hold more: its last batch came
// back full.
func (o *Outbox) claim(ctx context.Context) (more bool) {
	for range claimRounds {
		n, queued := o.claimOnce(ctx)
		if n < claimBatch {
			return false
		}
		if queued > 0 {
			return true
		}
	}
	return true
}

// room says whether fewer than a batch of deliveries wait here: the next
// batch of a backlog may be claimed.
func (o *Outbox) room() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queued) < claimBatch
}

// claimOnce claims one batch and returns how many events it claimed and
// how many of them it queued for delivery. The events of an API key
// unknown here are handed back; those of a known key with nowhere to go
// are acked at once, together (ackUnsent): they are collected as they
// came, with no delivery made for each.
func (o *Outbox) claimOnce(ctx context.Context) (n, queued int) {
	o.passAcked() // before the claim: none of them can be in it
	evs, err := o.store.ClaimEvents(ctx, eventLease, claimBatch)
	if err != nil {
		if ctx.Err() == nil {
			o.log.Warn("could not claim events; will retry", "err", err)
		}
		return 0, 0
	}
	now := o.now()
	// Events of an API key unknown here are handed back; the others'
	// first claims are observed, together, before any is delivered.
	known, fresh := evs[:0], o.fresh[:0]
	for _, ev := range evs {
		if o.Key(ev.Key) == nil {
			o.hold(ctx, o.delivery(ev, now))
			continue
		}
		known = append(known, ev)
		if o.claimed != nil && ev.Attempts == 0 {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) > 0 {
		o.claimed(fresh)
		clear(fresh)
		o.fresh = fresh[:0]
	}
	var unsent []matcher.Event
	for _, ev := range known {
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
		queued++
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
	return len(evs), queued
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
// (both of mogate's: the memory store in one log sync, Redis in one
// function call per number), else side by side, at most unsentAcks in
// flight: a store's call may hold a connection of a pool the API shares.
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
