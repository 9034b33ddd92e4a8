package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
)

// dueTags returns the tags whose sorted set name (exp, done, ev or linkexp) has
// members scored up to max.
func (s *Store) dueTags(ctx context.Context, set string, maxScore int64) ([]string, error) {
	tags, counts, err := s.tagCounts(ctx, set, strconv.FormatInt(maxScore, 10))
	if err != nil {
		return nil, err
	}
	var due []string
	for i, n := range counts {
		if n > 0 {
			due = append(due, tags[i])
		}
	}
	return due, nil
}

// tagCounts returns every tag and how many members of its sorted set name
// are scored up to max ("+inf": all of them): one round trip for the
// tags, one pipelined for their counts.
func (s *Store) tagCounts(ctx context.Context, set, max string) ([]string, []int64, error) {
	tags, err := s.rdb.SMembers(ctx, s.k.tags()).Result()
	if err != nil {
		return nil, nil, unavailable(err)
	}
	cmds := make([]*redis.IntCmd, len(tags))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range tags {
			cmds[i] = p.ZCount(ctx, s.k.key(t, set), "-inf", max)
		}
		return nil
	})
	if err != nil {
		return nil, nil, unavailable(err)
	}
	counts := make([]int64, len(cmds))
	for i, c := range cmds {
		counts[i] = c.Val()
	}
	return tags, counts, nil
}

// Undelivered counts the events not yet acked, due or not, leased or not,
// in every tag. mogate bench waits on it for a load run's events to leave.
func (s *Store) Undelivered(ctx context.Context) (int, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	_, counts, err := s.tagCounts(ctx, keyEvents, "+inf")
	n := 0
	for _, c := range counts {
		n += int(c)
	}
	return n, err
}

// ClaimEvents leases up to limit due events: each tag's claim is one
// function call, so replicas claiming at once never get the same event.
func (s *Store) ClaimEvents(ctx context.Context, lease time.Duration, limit int) ([]matcher.Event, error) {
	now := s.opt.Now()
	cctx, cancel := s.timeout(ctx)
	tags, err := s.dueTags(cctx, keyEvents, ms(now))
	cancel()
	if err != nil {
		return nil, err
	}
	// In random order: a number with a backlog does not starve the others.
	rand.Shuffle(len(tags), func(i, j int) { tags[i], tags[j] = tags[j], tags[i] })
	var out []matcher.Event
	for _, tag := range tags {
		if len(out) >= limit {
			break
		}
		// On an error, events claimed so far wait for their lease to end.
		v, err := s.call(ctx, "claim", keyArgs{tag: tag}, ms(now), ms(now.Add(lease)), limit-len(out))
		if err != nil {
			return nil, err
		}
		members, err := replyStrings(v, -1)
		if err != nil {
			return nil, unavailable(fmt.Errorf("claim: %w", err))
		}
		evs, err := s.events(ctx, tag, members)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	slices.SortFunc(out, func(a, b matcher.Event) int { return a.At.Compare(b.At) })
	return out, nil
}

// events reads the claimed members of a tag: sessions at their final
// status, message.unmatched events as recorded. A record that does not
// decode is logged and left (its lease ends, and it is claimed again).
func (s *Store) events(ctx context.Context, tag string, members []string) ([]matcher.Event, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	// Two commands for the claim, whatever its size: the sessions'
	// records, and from the event records each member's failed attempts
	// ("a:<member>") with, for a message.unmatched event, its record
	// first.
	var ids []string
	fields := make([]string, 0, len(members)+len(members)/4)
	for _, member := range members {
		if id, ok := strings.CutPrefix(member, "s:"); ok {
			ids = append(ids, id)
		} else {
			fields = append(fields, member)
		}
		fields = append(fields, "a:"+member)
	}
	var sc, ec *redis.SliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(ids) > 0 {
			sc = p.HMGet(ctx, s.k.key(tag, keySessions), ids...)
		}
		ec = p.HMGet(ctx, s.k.key(tag, keyEventRecords), fields...)
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	var svals []any
	if sc != nil {
		svals = sc.Val()
	}
	evals := ec.Val()
	if len(svals) != len(ids) || len(evals) != len(fields) {
		return nil, unavailable(fmt.Errorf("events of %s: %d and %d values for %d and %d fields", tag, len(svals), len(evals), len(ids), len(fields)))
	}
	var out []matcher.Event
	si, ei := 0, 0
	for _, member := range members {
		var rec any
		id, isSession := strings.CutPrefix(member, "s:")
		if isSession {
			rec, si = svals[si], si+1
		} else {
			rec, ei = evals[ei], ei+1
		}
		attempts := attemptsOf(evals[ei])
		ei++
		j, ok := rec.(string)
		if !ok {
			continue // dropped past the retention
		}
		if isSession {
			sess, err := s.decode(j, id)
			if err != nil {
				s.log.Error("redis: undecodable session of an event: not delivered", "member", member, "err", err)
				continue
			}
			if !sess.Status.Final() {
				continue
			}
			out = append(out, matcher.Event{ID: matcher.EventID(sess.ID, sess.Status), Key: sess.Key, Session: &sess, At: sess.FinishedAt, Attempts: attempts})
			continue
		}
		var e matcher.UnmatchedEvent
		err = json.Unmarshal([]byte(j), &e)
		if err == nil && "u:"+e.ID != member {
			err = fmt.Errorf("record of %q", e.ID)
		}
		if err != nil {
			s.log.Error("redis: undecodable message.unmatched event: not delivered", "member", member, "err", err)
			continue
		}
		out = append(out, matcher.Event{ID: e.ID, Key: e.Key, Unmatched: &e, At: e.At, Attempts: attempts})
	}
	return out, nil
}

// AckEvent removes a delivered (or dead) event and marks its session
// notified, in one call.
func (s *Store) AckEvent(ctx context.Context, ev matcher.Event, dead bool) error {
	member, to, err := eventMember(ev)
	if err != nil {
		return err
	}
	state := matcher.Delivered
	if dead {
		state = matcher.Dead
	}
	_, err = s.call(ctx, "ack", keyArgs{tag: tagOf(to)}, member, int(state))
	return err
}

var _ matcher.EventBatchAcker = (*Store)(nil) // the outbox acks a claim's events with nowhere to go in batches

// ackBatch bounds the events one ack call takes, and so how long it holds
// Redis's one thread, every other client's command waiting: 64 events
// took 0.4–0.45 ms on a loaded 2-core machine, where decoding and encoding
// each session record in Lua (before library.lua's notified) took 1–1.5 ms.
const ackBatch = 64

// AckEvents acks evs as AckEvent acks each: one function call per tag
// and per ackBatch of its events, each taking its events out with one
// command per key, so a claim's events with nowhere to go cost Redis a
// few commands rather than six each. It stops at the first call that
// fails: the events it did not ack are claimed again when their lease
// ends, as after a failed AckEvent.
func (s *Store) AckEvents(ctx context.Context, evs []matcher.Event, dead bool) error {
	state := int(matcher.Delivered)
	if dead {
		state = int(matcher.Dead)
	}
	var tags []string
	byTag := map[string][]any{}
	var bad error
	for _, ev := range evs {
		member, to, err := eventMember(ev)
		if err != nil {
			bad = fmt.Errorf("redisstore: ack of event %q: %w", ev.ID, err)
			continue
		}
		tag := tagOf(to)
		if _, ok := byTag[tag]; !ok {
			tags = append(tags, tag)
		}
		byTag[tag] = append(byTag[tag], member, state)
	}
	for _, tag := range tags {
		for args := byTag[tag]; len(args) > 0; {
			n := min(len(args), 2*ackBatch)
			if _, err := s.call(ctx, "ack", keyArgs{tag: tag}, args[:n]...); err != nil {
				return err
			}
			args = args[n:]
		}
	}
	return bad
}

// attemptsOf reads a failed-attempts count, an HMGET value (0 when there
// is none).
func attemptsOf(v any) int {
	s, _ := v.(string)
	n, _ := strconv.Atoi(s)
	return n
}

// DeferEvent moves an undelivered event's lease end to until and keeps its
// attempt count, in one call; an acked event stays acked.
func (s *Store) DeferEvent(ctx context.Context, ev matcher.Event, until time.Time) error {
	member, to, err := eventMember(ev)
	if err != nil {
		return err
	}
	_, err = s.call(ctx, "defer", keyArgs{tag: tagOf(to)}, member, ms(until), ev.Attempts)
	return err
}

// eventMember is an event's member of its tag's ev set and its receiving
// number.
func eventMember(ev matcher.Event) (member, to string, err error) {
	switch {
	case ev.Unmatched != nil:
		return "u:" + ev.ID, ev.Unmatched.Message.To, nil
	case ev.Session != nil:
		return "s:" + ev.Session.ID, ev.Session.To, nil
	}
	return "", "", matcher.ErrNotFound
}

// Events is signalled by this process's changes and by other replicas'
// (pub/sub).
func (s *Store) Events() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// subscribe subscribes to wakeups before anything is read.
func (s *Store) subscribe(ctx context.Context) error {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	s.ps = s.rdb.Subscribe(ctx, s.k.wake())
	if _, err := s.ps.Receive(ctx); err != nil {
		s.ps.Close()
		return unavailable(err)
	}
	return nil
}

// listen wakes waiters and signals Events for each wakeup. The
// subscription reconnects by itself after Redis comes back, and then every
// waiter is woken to read again: wakeups published meanwhile were lost.
func (s *Store) listen() {
	for m := range s.ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(time.Second)) {
		switch m := m.(type) {
		case *redis.Subscription:
			// Subscribed again after a reconnect (the first subscription
			// was received by subscribe).
			s.mu.Lock()
			for _, chs := range s.waiters {
				wakeAll(chs)
			}
			s.mu.Unlock()
		case *redis.Message:
			if m.Payload != "ev" {
				s.mu.Lock()
				wakeAll(s.waiters[m.Payload])
				s.mu.Unlock()
			}
		}
		s.signal()
	}
}

func wakeAll(chs []chan struct{}) {
	for _, ch := range chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *Store) watch(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.mu.Unlock()
	return ch
}

func (s *Store) unwatch(id string, ch chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chs := slices.DeleteFunc(s.waiters[id], func(c chan struct{}) bool { return c == ch })
	if len(chs) == 0 {
		delete(s.waiters, id)
	} else {
		s.waiters[id] = chs
	}
}

// waitFallback is how often Wait re-reads a session that no wakeup
// concerned: what a lost wakeup costs at most, in latency. A waiting
// stream costs no Redis call in between.
var waitFallback = 10 * time.Second

// Wait blocks until the session is final, ctx ends or it expires. It
// listens before it reads, then reads again when a wakeup names the
// session (or the subscription was re-established), at its expiry, and at
// the latest every waitFallback.
func (s *Store) Wait(ctx context.Context, id string) (matcher.Session, error) {
	ch := s.watch(id)
	defer s.unwatch(id, ch)
	// Reads are bounded by the store's timeout, not cut short by ctx: a
	// long-poll that ends gets the current state, not an error.
	rctx := context.WithoutCancel(ctx)
	for {
		sess, err := s.Get(rctx, id)
		if err != nil || sess.Status.Final() {
			return sess, err
		}
		t := time.NewTimer(min(waitFallback, sess.ExpiresAt.Sub(s.opt.Now())))
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return s.Get(rctx, id)
		}
		t.Stop()
	}
}

// sweepInterval is how often Run looks for due expiries.
const sweepInterval = 250 * time.Millisecond

// Run expires due sessions and drops old ones until ctx ends, and samples
// Redis's TIME every 10 s (see Now).
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	failing := false
	registered, synced := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(registered) > time.Minute {
			// Register the tags in use again now and then: a tag set lost
			// with a failover's last writes comes back.
			s.tags.Clear()
			registered = time.Now()
			_ = s.registerNumbers(ctx) // a failure shows in the sweep below
			_ = s.checkNodes(ctx)      // logs and counts unsafe nodes
		}
		if time.Since(synced) > clockSyncEvery {
			synced = time.Now()
			_ = s.syncClock(ctx) // a failure keeps the last offset, and shows in the sweep below
		}
		err := s.sweep(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("redis: sweep failed", "err", err)
		case err == nil && failing:
			s.log.Info("redis: sweep works again")
		}
		failing = err != nil
	}
}

// sweepLimit bounds the sessions one sweep call expires or drops.
const sweepLimit = 500

func (s *Store) sweep(ctx context.Context) error {
	now := s.opt.Now()
	cctx, cancel := s.timeout(ctx)
	exp, err := s.dueTags(cctx, keyExpiries, ms(now))
	var old, links []string
	if err == nil {
		old, err = s.dueTags(cctx, keyFinished, ms(now.Add(-s.opt.Retention)))
	}
	if err == nil {
		links, err = s.dueTags(cctx, keyLinkExp, ms(now))
	}
	cancel()
	if err != nil {
		return err
	}
	expired := false
	for _, tag := range slices.Compact(slices.Sorted(slices.Values(slices.Concat(exp, old, links)))) {
		v, err := s.call(ctx, "sweep", keyArgs{tag: tag}, ms(now), s.opt.Retention.Milliseconds(), sweepLimit)
		if err != nil {
			return err
		}
		n, err := replyInt(v)
		if err != nil {
			return unavailable(fmt.Errorf("sweep: %w", err))
		}
		if n > 0 {
			expired = true
		}
	}
	if expired {
		s.signal()
	}
	return nil
}
