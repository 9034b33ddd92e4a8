package memstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestBehaviourOnWAL runs the matcher's behaviour tests on the journal
// production uses, the write-ahead log, not only on the recorder.
func TestBehaviourOnWAL(t *testing.T) {
	tests := map[string]func(*testing.T){
		"CaptureCodeCollisions":       TestCaptureCodeCollisions,
		"ReplayRebuildsState":         TestReplayRebuildsState,
		"WaitLeavesNoWatcher":         TestWaitLeavesNoWatcher,
		"CaptureWindowsAreNotGuesses": TestCaptureWindowsAreNotGuesses,
		"PendingCounts":               TestPendingCounts,
		"ManyRecordsInOneAppend":      TestManyRecordsInOneAppend,
	}
	onWAL = true
	defer func() { onWAL = false }()
	for name, fn := range tests {
		t.Run(name, fn)
	}
}

// TestSupersedeOnlySameKeyAcrossRestart: coexisting sessions of one pair
// come back from a snapshot in creation order (the older still wins).
func TestSupersedeOnlySameKeyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	var ids []string
	for i, key := range []string{"k1", "k2", "k3", "k4", "k5"} {
		c.Add(time.Second)
		s, _, err := m.createOnce(matcher.CreateRequest{Key: key, Number: alice, Code: "424242", To: to, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(i, err)
		}
		ids = append(ids, s.ID)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	for i, want := range ids {
		o, err := m2.ingestOnce(sms(alice, "424242"), matcher.IngestOptions{})
		if err != nil || o.Kind != matcher.Matched || o.SessionID != want {
			t.Fatalf("match %d after restart: %+v %v, want %s", i, o, err, want)
		}
	}
}

// TestCaptureWindowsAreNotGuesses: before, one long SMS tried every
// code-shaped window of its text (about 800 in a long SMS) and verified
// whatever capture session it hit. A code hidden in a run of digits, or one
// token among many, now matches nothing.
func TestCaptureWindowsAreNotGuesses(t *testing.T) {
	m, _, _ := newTest(t)
	var codes []string
	var ids []string
	for range 20 {
		s := create(t, m, "", "")
		codes, ids = append(codes, s.Code), append(ids, s.ID)
	}
	spaced := func(s string) string { return strings.Join(strings.Split(s, ""), " ") }
	texts := []string{
		"9 " + spaced(strings.Join(codes, "")) + " 9",    // every code is a window of one spaced run
		strings.Join(codes, ", "),                        // every code is a token: 20 tokens
		"codes: " + strings.Join(codes, "-") + " thanks", // one long token
	}
	for _, text := range texts {
		if o := ingest(t, m, sms(mallet, text)); o.Kind == matcher.Matched {
			t.Fatalf("%.40q… hijacked %s", text, o.SessionID)
		}
	}
	for _, id := range ids {
		if got := get(t, m, id); got.Status != matcher.Pending {
			t.Fatalf("session %s = %s", id, got.Status)
		}
	}
}

// TestPendingCounts: the counts kept as sessions come and go equal a walk
// over every session.
func TestPendingCounts(t *testing.T) {
	m, c, _ := newTest(t)
	walk := func() map[string]int {
		out := map[string]int{}
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			for s := range sh.byID.all() {
				if s.status == matcher.Pending {
					out[s.to]++
				}
			}
			sh.mu.Unlock()
		}
		return out
	}
	check := func(step string) {
		t.Helper()
		got, want := m.pendingByNumber(), walk()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: counts %v, walk %v", step, got, want)
		}
		total := 0
		for _, n := range want {
			total += n
		}
		if m.Pending() != total {
			t.Fatalf("%s: Pending() = %d, want %d", step, m.Pending(), total)
		}
	}
	a := create(t, m, alice, "111111")
	create(t, m, mallet, "222222")
	other := "+14155550101"
	if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, Code: "333333", To: other, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	check("created")
	create(t, m, alice, "444444") // supersedes a
	check("superseded")
	ingest(t, m, sms(mallet, "222222"))
	check("verified")
	if _, err := m.cancel(a.ID); !errors.Is(err, matcher.ErrNotPending) {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	check("expired")
}

// TestManyRecordsInOneAppend: the sweep journals every expired session of a
// shard at once and an unmatched message one record per opted-in key; the
// WAL journal took at most four records and panicked past that (a crash loop
// after downtime).
func TestManyRecordsInOneAppend(t *testing.T) {
	m, c, _ := newTest(t)
	for i := range 600 {
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1415555%04d", i), Code: "482913", To: to, TTL: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(25 * time.Second)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if m.Pending() != 0 {
		t.Fatalf("%d still pending after the sweep", m.Pending())
	}
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	o, err := m.ingestOnce(sms(mallet, "hello"), matcher.IngestOptions{UnmatchedKeys: keys})
	unmatched := 0
	for _, ev := range due(t, m) {
		if ev.Unmatched != nil {
			unmatched++
		}
	}
	if err != nil || o.Kind != matcher.Unmatched || unmatched != len(keys) {
		t.Fatalf("unmatched with %d keys: %+v %v, %d events", len(keys), o, err, unmatched)
	}
}

// TestRestartAfterDowntimeExpires reproduces the crash loop: 600 sessions
// with a 20 s TTL, stop, 25 s pass, start: the first sweep expires them all
// and a restart after that sees them expired.
func TestRestartAfterDowntimeExpires(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	var ids []string
	for i := range 600 {
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: fmt.Sprintf("+1415555%04d", i), Code: "482913", To: to, TTL: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(25 * time.Second)
	m2 := openDurable(t, dir, c)
	if err := m2.Sweep(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // crash after the sweep: the expiries are in the log
	defer m3.Close()
	for _, id := range ids {
		if s, err := m3.get(id); err != nil || s.Status != matcher.Expired || s.FinishedAt.IsZero() {
			t.Fatalf("%s after restart: %+v %v", id, s, err)
		}
	}
	if n := len(due(t, m3)); n != len(ids) {
		t.Fatalf("%d expiry events due, want %d", n, len(ids))
	}
}

// TestSpentNonceSurvivesRestart: a spent nonce stays spent after a crash
// (log replay) and after a snapshot, for the retention window.
func TestSpentNonceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	for _, n := range []string{"a", "b"} {
		if fresh, err := m.spendNonce("plivo", n); !fresh || err != nil {
			t.Fatal(fresh, err)
		}
	}
	m2 := openDurable(t, dir, c) // crash: only the log
	if fresh, _ := m2.spendNonce("plivo", "a"); fresh {
		t.Fatal("nonce fresh again after a crash")
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // from the snapshot
	if fresh, _ := m3.spendNonce("plivo", "b"); fresh {
		t.Fatal("nonce fresh again after a snapshot")
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour + time.Minute) // past the retention (1h in openDurable)
	m4 := openDurable(t, dir, c)
	defer m4.Close()
	if fresh, _ := m4.spendNonce("plivo", "a"); !fresh {
		t.Fatal("nonce kept past the retention")
	}
}

// TestPendingCountsConcurrent: counters made concurrently, for numbers new
// to the lock-free map and merged into it while others read it, all count:
// every number ends with each goroutine's additions, and the total agrees.
func TestPendingCountsConcurrent(t *testing.T) {
	const workers, numbers = 8, 500
	var p pendingCounts
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ix shard // the worker's own, as a held shard is
			for i := range numbers {
				n := "+1415555" + strconv.Itoa((i*7+w*13)%numbers)
				p.add(&ix, n, 2)
				p.add(&ix, n, -1)
			}
		}()
	}
	wg.Wait()
	seen := 0
	p.each(func(n string, c *atomic.Int64) {
		seen++
		if v := c.Load(); v != workers {
			t.Errorf("%s counts %d, want %d", n, v, workers)
		}
	})
	if seen != numbers || p.total.Load() != workers*numbers {
		t.Fatalf("%d numbers, total %d; want %d, %d", seen, p.total.Load(), numbers, workers*numbers)
	}
}

// TestPendingCountsOneShard: sessions on two numbers whose pairs share a
// shard, created, verified and cancelled in turn, count on their own
// number: the shard's cached counter (pendingCounts.add) is its number's
// only.
func TestPendingCountsOneShard(t *testing.T) {
	const a, b = "+14155550101", "+14155550102"
	m := New(Options{})
	var fromA, fromB []string // senders whose pair with a (b) is in shard 0
	for i := 0; len(fromA) < 3 || len(fromB) < 3; i++ {
		s := "+1999" + fmt.Sprintf("%07d", i)
		if pairShard(a, s) == 0 && len(fromA) < 3 {
			fromA = append(fromA, s)
		} else if pairShard(b, s) == 0 && len(fromB) < 3 {
			fromB = append(fromB, s)
		}
	}
	var idsA, idsB []string
	for i := range 3 {
		for _, p := range []struct {
			to, from string
			ids      *[]string
		}{{a, fromA[i], &idsA}, {b, fromB[i], &idsB}} {
			s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: p.from, Code: "482913", To: p.to, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			*p.ids = append(*p.ids, s.ID)
		}
	}
	if o, err := m.ingest(&matcher.Message{Provider: "tw", MessageID: "m1", From: fromA[0], To: a, Text: "482913"}, matcher.IngestOptions{}); err != nil || o.SessionID != idsA[0] {
		t.Fatal(o, err)
	}
	if _, err := m.cancel(idsB[0]); err != nil {
		t.Fatal(err)
	}
	if o, err := m.ingest(&matcher.Message{Provider: "tw", MessageID: "m2", From: fromA[1], To: a, Text: "482913"}, matcher.IngestOptions{}); err != nil || o.SessionID != idsA[1] {
		t.Fatal(o, err)
	}
	if got := m.pendingByNumber(); len(got) != 2 || got[a] != 1 || got[b] != 2 || m.Pending() != 3 {
		t.Fatalf("pending %v (%d in all), want %s: 1, %s: 2 (3)", got, m.Pending(), a, b)
	}
}
