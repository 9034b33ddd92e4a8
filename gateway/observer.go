package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
)

// onClaim is the one observer of final statuses, for every store: the
// outbox calls it with the events of each claim before any failed
// delivery,
// and each final status has its event (verification.verified, expired,
// failed, cancelled). The metrics, pool health and the lifecycle log
// follow a session from there, whichever store made the change and
// whichever replica claims it.
//
// An event can be claimed more than once with no failed delivery: its
// lease ran out while a replica held it (a renewal that failed), the
// replica that held it died, or the process restarted before delivering
// it. The guard (s.finals) lets only the first claim of an event id
// through, for as long as the event can be claimed at all: in the shared
// Redis for the whole deployment when there is one, else in this process
// (one process owns a memory store; after its restart the guard starts
// empty, as do the counters and pool health it protects). We chose the
// guard over "count only claims with Attempts 0": a lease that ran out
// leaves Attempts at 0, so that test alone counts a re-claim again. A
// guard that cannot be read lets the claim through: a final status
// counted twice, rarely, is better than one never counted.
func (s *Server) onClaim(now func() time.Time) func([]matcher.Event) {
	return func(evs []matcher.Event) {
		var ids []string
		for _, ev := range evs {
			if ev.Session != nil {
				ids = append(ids, ev.ID)
			}
		}
		if len(ids) == 0 {
			return
		}
		first := make([]bool, len(ids))
		if err := s.finals.firsts(context.Background(), ids, now(), first); err != nil {
			s.log.Warn("could not record events as observed; counting those", "events", len(ids), "err", err)
		}
		i := 0
		for _, ev := range evs {
			if ev.Session == nil {
				continue
			}
			if first[i] {
				s.finished(*ev.Session)
			}
			i++
		}
	}
}

// onAcked is the outbox's OnAcked: the guard in process forgets the
// events that were acked; the one in Redis lets each expire.
func (s *Server) onAcked() func([]string) {
	if fg, ok := s.finals.(forgetter); ok {
		return fg.forget
	}
	return nil
}

// onceGuard lets the first observation of each event id through, and
// remembers it for the event's lifetime: bounded by time, like the promise
// it keeps, never by a count (a count-bounded cache under a burst of final
// statuses would forget ids still claimable and count them again). A
// guard that goes to a store bounds its own call (storeBudget): the one in
// process, called for every event claimed, needs no timer.
type onceGuard interface {
	// firsts sets first[i] to whether ids[i] is observed for the first
	// time (len(first) == len(ids)), true where it cannot tell (an error
	// says so).
	firsts(ctx context.Context, ids []string, now time.Time, first []bool) error
}

// newOnceGuard keeps the guard in the shared Redis when there is one, in
// process otherwise; maxAge is how long an event stays claimable.
func (s *Server) newOnceGuard(maxAge time.Duration) onceGuard {
	if s.shared != nil {
		return sharedOnce{rdb: s.shared.Client, prefix: s.shared.Prefix + "observed:", ttl: maxAge}
	}
	return newFinalObserver(maxAge)
}

// sharedOnce is onceGuard for every replica: one SET NX per event id, which
// expires with the event's lifetime; a claim's ids in one pipeline (one
// round trip, where one after the other a claim of 256 events took ~0.3 s
// on a Redis that fsyncs every write). Each SET stores a token of the
// call and returns the value it found (NX GET, Redis 7.0): a client that
// sends a command again after a broken connection (go-redis's Cluster
// client does so for a node's part of a pipeline) finds its own token and
// still counts the event, where a plain SET NX would answer "not first"
// and the event would never be counted. Older builds store "1", which is
// never a token.
type sharedOnce struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

func (g sharedOnce) firsts(ctx context.Context, ids []string, _ time.Time, first []bool) error {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return g.firstsWith(ctx, ids, "t"+hex.EncodeToString(b[:]), first)
}

// firstsWith is firsts with the call's token. An id whose command failed
// counts as first: a status counted twice, rarely, rather than never
// (on Cluster, one node failing fails its part of the pipeline only).
func (g sharedOnce) firstsWith(ctx context.Context, ids []string, token string, first []bool) error {
	ctx, cancel := context.WithTimeout(ctx, storeBudget)
	defer cancel()
	cmds := make([]*redis.StatusCmd, len(ids))
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.SetArgs(ctx, g.prefix+id, token, redis.SetArgs{Mode: "NX", Get: true, TTL: g.ttl})
		}
		return nil
	})
	for i, c := range cmds {
		v, cerr := c.Result()
		switch {
		case errors.Is(cerr, redis.Nil):
			first[i] = true // stored: nobody had observed it
		case cerr != nil || v == "":
			first[i] = true // unknown (no value is ever empty; a pipeline that failed to send leaves its commands unanswered): counted
		default:
			first[i] = v == token // ours, sent again; else another's
		}
	}
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	return err
}

// finalObserver is onceGuard in process. It remembers each id until its
// event can no longer be claimed: an event is claimable until it is
// delivered or dead, and dead at the latest maxAge after its status (the
// outbox's MaxAge), so an id observed at t is kept until t+maxAge, an upper
// bound, or until the outbox says its event was acked (forget), whichever
// comes first: a busy gateway's guard holds the events on their way, not
// a day of them.
type finalObserver struct {
	maxAge time.Duration
	mu     sync.Mutex
	seen   map[string]time.Time // id: until, the until of its entry in order
	order  []observed           // by time observed: the oldest first, from head on
	head   int
}

type observed struct {
	id    string
	until time.Time
}

func newFinalObserver(maxAge time.Duration) *finalObserver {
	return &finalObserver{maxAge: maxAge, seen: map[string]time.Time{}}
}

var _ onceGuard = (*finalObserver)(nil)

// firsts reports, for each of ids, whether it is observed for the first
// time at now, and remembers it; it forgets the ids whose time has passed.
func (f *finalObserver) firsts(_ context.Context, ids []string, now time.Time, first []bool) error {
	for i, id := range ids {
		first[i] = f.firstAt(id, now)
	}
	return nil
}

func (f *finalObserver) firstAt(id string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.head < len(f.order) && !now.Before(f.order[f.head].until) {
		if f.live(f.order[f.head]) {
			delete(f.seen, f.order[f.head].id)
		}
		f.order[f.head] = observed{}
		f.head++
	}
	if f.head > len(f.order)/2 { // amortized: each entry is moved at most once per halving
		f.order = append(f.order[:0], f.order[f.head:]...)
		clear(f.order[len(f.order):cap(f.order)])
		f.head = 0
	}
	if _, ok := f.seen[id]; ok {
		return false
	}
	until := now.Add(f.maxAge)
	f.seen[id] = until
	f.order = append(f.order, observed{id: id, until: until})
	return true
}

// live reports whether e is the entry of an id still remembered, not one
// forgotten (nor an older entry of an id forgotten and observed again).
func (f *finalObserver) live(e observed) bool {
	until, ok := f.seen[e.id]
	return ok && until.Equal(e.until)
}

// forget drops the ids of events that were acked: they are never claimed
// again (matcher.Store.AckEvent), so never observed again. Their entries
// in order are dropped once they are half of it (amortized, as above).
func (f *finalObserver) forget(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		delete(f.seen, id)
	}
	// Entries of order[head:] whose id was forgotten: each remembered id
	// has one live entry there, every other entry is gone.
	if gone := len(f.order) - f.head - len(f.seen); gone > (len(f.order)-f.head)/2 {
		kept := f.order[:0]
		for _, e := range f.order[f.head:] {
			if f.live(e) {
				kept = append(kept, e)
			}
		}
		clear(f.order[len(kept):])
		f.order, f.head = kept, 0
	}
}

// forgetter is a onceGuard that can be told which ids it need not keep.
type forgetter interface{ forget(ids []string) }

// held returns how many ids are remembered.
func (f *finalObserver) held() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}
