package memstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// pendingCounts keeps the number of pending sessions per receiving number,
// changed where sessions enter and leave the pending state, so reading it
// costs O(numbers), never a walk over the sessions.
type pendingCounts struct {
	m     sync.Map // receiving number -> *atomic.Int64
	total atomic.Int64
}

func (p *pendingCounts) add(to string, d int64) {
	c, ok := p.m.Load(to)
	if !ok {
		c, _ = p.m.LoadOrStore(to, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(d)
	p.total.Add(d)
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
	m.pending.m.Range(func(k, v any) bool {
		if n := v.(*atomic.Int64).Load(); n > 0 {
			out[k.(string)] = int(n)
		}
		return true
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
