package outbox

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher"
)

// An event whose API key this process does not know (a rolling config
// change, a reload that removed the key for a while) cannot be signed or
// addressed here, and is not this process's to give up on: it is handed
// back to the store undelivered, its failed attempts and backoff
// untouched, to be claimed again by a replica, or after a reload, that
// knows the key. Like any undelivered event it dies only at the end of its
// MaxAge.

// errUnknownKey is the outcome of an event whose API key is not configured
// in this process.
var errUnknownKey = errors.New("outbox: the event's API key is not configured in this process")

// unknownLogEvery bounds the "events held" lines to one per API key name
// per interval.
const unknownLogEvery = time.Minute

// unknownLog rate-limits the lines about events of unknown API keys.
type unknownLog struct {
	mu   sync.Mutex
	keys map[string]*unknownLine // by API key name
}

type unknownLine struct {
	last time.Time // when a line was written
	held int       // events held since that line
}

// hold hands d, an event whose API key this process does not know, back
// to the store: claimable again after UnknownKeyRetry, or dead once past
// MaxAge, as any undelivered event.
func (o *Outbox) hold(ctx context.Context, d *delivery) {
	now := o.now()
	end := d.since().Add(o.opt.MaxAge)
	if !now.Before(end) {
		if o.claimed != nil && d.ev.Attempts == 0 {
			o.claimed([]matcher.Event{d.ev}) // no process that knows the key ever claimed it
		}
		o.dead.Inc()
		o.log.Error("event dead: not delivered", "event", d.key(), "key", d.apiKey(), "reason", "unknown_key", "attempts", d.ev.Attempts)
		o.ack(ctx, d.ev, true)
		return
	}
	o.unknownKey.Inc()
	o.noteUnknown(d.apiKey(), now)
	until := now.Add(o.opt.UnknownKeyRetry)
	if until.After(end) {
		until = end // claimable again when it is due to die
	}
	if err := o.store.DeferEvent(ctx, d.ev, until); err != nil && ctx.Err() == nil {
		o.log.Warn("could not hand an event of an unknown API key back; it is claimable when its lease ends", "event", d.key(), "err", err)
	}
}

// noteUnknown logs, at most once per unknownLogEvery and API key name,
// that events of key are held for a process that knows it.
func (o *Outbox) noteUnknown(key string, now time.Time) {
	l := &o.unknown
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*unknownLine{}
	}
	line := l.keys[key]
	if line == nil {
		line = &unknownLine{}
		l.keys[key] = line
	}
	line.held++
	if !line.last.IsZero() && now.Sub(line.last) < unknownLogEvery {
		return
	}
	o.log.Warn("events held: their API key is not in this process's configuration; they stay claimable for a replica or a reload that knows it",
		"key", key, "events", line.held, "retry_in", o.opt.UnknownKeyRetry.String())
	line.last, line.held = now, 0
	for k, v := range l.keys {
		if now.Sub(v.last) > 10*unknownLogEvery {
			delete(l.keys, k) // a key no longer seen
		}
	}
}
