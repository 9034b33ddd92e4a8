package memstore

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// pendingCounts keeps the number of pending sessions per receiving number,
// changed where sessions enter and leave the pending state, so reading it
// costs O(numbers), never a walk over the sessions. A number's counter is
// found with no lock in read, an immutable map (a deployment's numbers
// settle early; a plain map's lookup took some 80 instructions fewer than
// a sync.Map's, which hashes its key as an interface); a number new since
// read was made is in dirty, under mu, merged into a new read once the
// lookups that took mu since the last merge are a fraction of read's size
// (as proofCache does), so the copying stays linear in them.
type pendingCounts struct {
	read   atomic.Pointer[map[string]*atomic.Int64]
	mu     sync.Mutex
	dirty  map[string]*atomic.Int64
	misses int // lookups that took mu since the last merge
	total  atomic.Int64
}

// add adds d to the count of number to, whose match key's shard ix the
// caller holds: the counter is ix's cached one when ix last counted for
// the same number.
func (p *pendingCounts) add(ix *shard, to string, d int64) {
	c := ix.pendC
	if c == nil || ix.pendTo != to {
		c = p.counter(to)
		ix.pendTo, ix.pendC = to, c
	}
	c.Add(d)
	p.total.Add(d)
}

// counter returns to's counter, made at the first lookup.
func (p *pendingCounts) counter(to string) *atomic.Int64 {
	if r := p.read.Load(); r != nil {
		if c := (*r)[to]; c != nil {
			return c
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	read := p.readMap()
	if c := read[to]; c != nil {
		return c
	}
	c := p.dirty[to]
	if c == nil {
		c = new(atomic.Int64)
		if p.dirty == nil {
			p.dirty = map[string]*atomic.Int64{}
		}
		p.dirty[to] = c
	}
	if p.misses++; p.misses >= len(read)/4+8 || len(read) == 0 {
		merged := make(map[string]*atomic.Int64, len(read)+len(p.dirty))
		maps.Copy(merged, read)
		maps.Copy(merged, p.dirty)
		p.read.Store(&merged)
		p.dirty, p.misses = nil, 0
	}
	return c
}

// readMap returns read's map (nil before the first number).
func (p *pendingCounts) readMap() map[string]*atomic.Int64 {
	if r := p.read.Load(); r != nil {
		return *r
	}
	return nil
}

// each calls fn with every number and its counter.
func (p *pendingCounts) each(fn func(string, *atomic.Int64)) {
	p.mu.Lock()
	read, dirty := p.readMap(), maps.Clone(p.dirty)
	p.mu.Unlock()
	for k, c := range read {
		fn(k, c)
	}
	for k, c := range dirty {
		fn(k, c)
	}
}

// Pending returns the number of pending sessions (including ones past
// their expiry that the sweeper has not recorded yet). It is O(1).
func (m *Store) Pending() int { return int(m.pending.total.Load()) }

// PendingByNumber returns the number of pending sessions per receiving
// number. It costs O(numbers), not O(sessions).
func (m *Store) PendingByNumber(ctx context.Context) (map[string]int, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return m.pendingByNumber(), nil
}

func (m *Store) pendingByNumber() map[string]int {
	out := map[string]int{}
	m.pending.each(func(k string, c *atomic.Int64) {
		if n := c.Load(); n > 0 {
			out[k] = int(n)
		}
	})
	return out
}

// guessBudget is the capture guess limit (docs/matching.md): a token bucket per
// sender of perHour guesses an hour, burst perHour, on the matcher's clock.
type guessBudget struct {
	mu      sync.Mutex
	perHour float64 // 0: unlimited
	senders map[string]*guessBucket
}

type guessBucket struct {
	tokens float64
	at     int64 // unix ns of the last refill
}

// take spends one guess of sender, or reports that none is left.
func (g *guessBudget) take(sender string, now time.Time) bool {
	if g.perHour <= 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.senders[sender]
	if b == nil {
		b = &guessBucket{tokens: g.perHour, at: now.UnixNano()}
		g.senders[sender] = b
	}
	b.refill(g.perHour, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *guessBucket) refill(perHour float64, now time.Time) {
	if ns := now.UnixNano(); ns > b.at {
		b.tokens = min(perHour, b.tokens+perHour*float64(ns-b.at)/float64(time.Hour))
		b.at = ns
	}
}

// prune forgets senders whose bucket is full again: they are the same as
// unknown ones.
func (g *guessBudget) prune(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, b := range g.senders {
		if b.refill(g.perHour, now); b.tokens >= g.perHour {
			delete(g.senders, k)
		}
	}
}
