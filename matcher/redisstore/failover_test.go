package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// clusterRecovery bounds the time from a replica's promotion to the first
// call that succeeds on the slots it took over.
const clusterRecovery = 3 * time.Second

// acked is a session whose create was acknowledged, and whether its
// verification was acknowledged (verified) or answered an error (tried).
type acked struct {
	id, to          string
	verified, tried bool
}

// answer is one call of the load: its receiving number, when it began
// and ended, whether it succeeded.
type answer struct {
	to         string
	start, end time.Time
	ok         bool
}

// clusterLoad creates and verifies sessions on two stores (as two
// replicas of mogate) until stop closes, pacing itself; it records every
// answer and every acknowledged fact, and reports an error that is not
// ErrUnavailable (a failure must never pass for anything else).
type clusterLoad struct {
	t      *testing.T
	stores [2]*redisstore.Store
	tos    []string
	seq    atomic.Int64

	mu      sync.Mutex
	acked   []*acked
	answers []answer
	kinds   map[string]int // failures by kind, for the log
}

func (l *clusterLoad) note(to string, start time.Time, err error) {
	if err != nil && !errors.Is(err, matcher.ErrUnavailable) {
		l.t.Errorf("answer for %s is neither a success nor unavailable: %v", to, err)
	}
	l.mu.Lock()
	l.answers = append(l.answers, answer{to: to, start: start, end: time.Now(), ok: err == nil})
	if err != nil {
		kind := "other"
		for _, k := range []string{"CLUSTERDOWN", "connection refused", "EOF", "reset", "timeout", "deadline"} {
			if strings.Contains(err.Error(), k) {
				kind = k
				break
			}
		}
		l.kinds[kind]++
	}
	l.mu.Unlock()
}

// worker creates a session on one store and verifies every other one
// through the other store, with a fresh sender each time (no session
// supersedes another).
func (l *clusterLoad) worker(w int, stop <-chan struct{}) {
	ctx := context.Background()
	tick := time.NewTicker(15 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		n := l.seq.Add(1)
		to := l.tos[rand.IntN(len(l.tos))]
		sender := fmt.Sprintf("+4477009%05d", n)
		code := fmt.Sprintf("%06d", rand.IntN(1_000_000))
		a, b := l.stores[w%2], l.stores[(w+1)%2]
		start := time.Now()
		sess, _, err := a.Create(ctx, matcher.CreateRequest{Key: "k", Number: sender, Code: code, To: to, TTL: time.Hour})
		l.note(to, start, err)
		if err != nil {
			continue
		}
		rec := &acked{id: sess.ID, to: to}
		l.mu.Lock()
		l.acked = append(l.acked, rec)
		l.mu.Unlock()
		if n%2 == 0 {
			continue
		}
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", n), From: sender, To: to, Text: code}
		start = time.Now()
		o, err := b.Ingest(ctx, msg, matcher.IngestOptions{})
		l.note(to, start, err)
		l.mu.Lock()
		switch {
		case err != nil:
			rec.tried = true
		case o.Kind != matcher.Matched || o.SessionID != sess.ID:
			l.t.Errorf("verify of %s answered %+v", sess.ID, o)
		default:
			rec.verified = true
		}
		l.mu.Unlock()
	}
}

// TestClusterFailover: on a Cluster of three primaries with one replica
// each, kill -9 of a primary under load loses no acknowledged create or
// verification, every failure is ErrUnavailable, and calls for the dead
// primary's slots succeed again within clusterRecovery of its replica's
// promotion: the slot map is reloaded on connection errors, not only on
// redirects or every 10 s. With cluster-require-full-coverage no, the
// other primaries' slots never fail meanwhile (by default the whole
// cluster answers CLUSTERDOWN from the failure report to the promotion).
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cases := []struct {
		name        string
		args        []string
		othersServe bool
	}{
		{"default", nil, false},
		{"partial-coverage", []string{"--cluster-require-full-coverage", "no"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { clusterFailover(t, tc.args, tc.othersServe) })
	}
}

func clusterFailover(t *testing.T, args []string, othersServe bool) {
	c := redistest.StartFailoverCluster(t, 3, 1, time.Second, args...)
	ctx := context.Background()
	seed := redis.NewClient(&redis.Options{Addr: c.Servers[0].Addr()})
	defer seed.Close()
	var tos []string
	slots := map[string]int{}
	for i := range 12 {
		to := fmt.Sprintf("+1415555%04d", 200+i)
		slot, err := seed.ClusterKeySlot(ctx, redisstore.SessionsKey(to)).Result()
		if err != nil {
			t.Fatal(err)
		}
		tos, slots[to] = append(tos, to), int(slot)
	}
	victim, reps := c.SlotOwner(t, slots[tos[0]])
	if len(reps) != 1 {
		t.Fatalf("primary %s has replicas %v, want one", victim.Addr(), reps)
	}
	dead := map[string]bool{}
	for _, to := range tos {
		if p, _ := c.SlotOwner(t, slots[to]); p == victim {
			dead[to] = true
		}
	}
	if len(dead) == len(tos) {
		t.Fatalf("every number's slot is on %s", victim.Addr())
	}

	// Without WAIT: a promoted primary has no replica left to wait for.
	o := options(c.URL(), nil)
	o.Unsafe, o.Timeout, o.Numbers = true, 2*time.Second, tos
	l := &clusterLoad{t: t, tos: tos, kinds: map[string]int{}}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	for i := range l.stores {
		l.stores[i] = open(t, o)
		go l.stores[i].Run(runCtx)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() { l.worker(w, stop) })
	}
	halt := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer halt()

	waitWithin(t, 20*time.Second, "verifications acknowledged on the victim's slots", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := 0
		for _, a := range l.acked {
			if dead[a.to] && a.verified {
				n++
			}
		}
		return n >= 10
	})
	victim.Kill()
	killed := time.Now() // the process is gone: no later call reaches it
	rc := redis.NewClient(&redis.Options{Addr: reps[0].Addr(), MaxRetries: -1})
	defer rc.Close()
	var promoted time.Time
	for promoted.IsZero() {
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("replica %s not promoted 20 s after the kill", reps[0].Addr())
		}
		if role, err := rc.Do(ctx, "role").Slice(); err == nil && role[0] == "master" {
			promoted = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Load until a dead slot succeeds again and one more second, or 12 s.
	var recovered time.Time
	for end := promoted.Add(12 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if recovered.IsZero() {
			recovered = l.firstSuccess(dead, killed)
			if !recovered.IsZero() {
				end = time.Now().Add(time.Second)
			}
		}
	}
	halt()

	l.mu.Lock()
	defer l.mu.Unlock()
	var lastBefore time.Time
	failed := map[bool]int{}
	for _, a := range l.answers {
		if dead[a.to] && a.ok && a.end.Before(killed) && a.end.After(lastBefore) {
			lastBefore = a.end
		}
		if !a.ok {
			failed[dead[a.to]]++
		}
	}
	t.Logf("%d answers, %d creates acknowledged; failures: %d on the dead primary's slots, %d elsewhere, by kind %v",
		len(l.answers), len(l.acked), failed[true], failed[false], l.kinds)
	t.Logf("primary %s killed; replica %s promoted %v later", victim.Addr(), reps[0].Addr(), promoted.Sub(killed).Round(time.Millisecond))
	if recovered.IsZero() {
		t.Fatalf("no call for the dead primary's slots succeeded within 12 s of the promotion")
	}
	gap := recovered.Sub(promoted)
	t.Logf("first success on its slots %v after the promotion (%v after the last success before the kill)",
		gap.Round(time.Millisecond), recovered.Sub(lastBefore).Round(time.Millisecond))
	if gap > clusterRecovery {
		t.Errorf("calls for the dead primary's slots failed %v after the promotion, want at most %v", gap, clusterRecovery)
	}
	if othersServe && failed[false] > 0 {
		t.Errorf("%d calls for the other primaries' slots failed", failed[false])
	}

	// Read back every acknowledged fact through a store opened afresh.
	fresh := open(t, o)
	for _, a := range l.acked {
		got, err := fresh.Get(ctx, a.id)
		switch {
		case err != nil:
			t.Errorf("acknowledged session %s (to %s): %v", a.id, a.to, err)
		case a.verified && got.Status != matcher.Verified:
			t.Errorf("acknowledged verification of %s reads %v", a.id, got.Status)
		case !a.verified && !a.tried && got.Status != matcher.Pending:
			t.Errorf("session %s, never verified, reads %v", a.id, got.Status)
		case a.tried && got.Status != matcher.Pending && got.Status != matcher.Verified:
			t.Errorf("session %s, whose verification failed, reads %v", a.id, got.Status)
		}
	}
}

// firstSuccess is when the first call for a number in dead that began
// after killed ended with a success; zero when none has yet.
func (l *clusterLoad) firstSuccess(dead map[string]bool, killed time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, a := range l.answers {
		if dead[a.to] && a.ok && a.start.After(killed) && (first.IsZero() || a.end.Before(first)) {
			first = a.end
		}
	}
	return first
}
