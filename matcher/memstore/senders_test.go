package memstore

import (
	"bytes"
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// TestSenderCountsOutliveFlood: the 24 h sender counts forget by time
// only. A flood of a million other senders does not push out a recent
// verification, the window's edge is exact, and once the flood is older
// than the window its memory is given back.
func TestSenderCountsOutliveFlood(t *testing.T) {
	var c senderCounts
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c.add("k", alice, now.Add(-time.Hour), [16]byte{1})
	c.add("k", alice, now.Add(-senderWindow), [16]byte{2})                 // on the edge: counted
	c.add("k", alice, now.Add(-senderWindow-time.Nanosecond), [16]byte{3}) // just past it
	c.add("k2", alice, now.Add(-time.Minute), [16]byte{4})                 // another key
	const flood = 1 << 20
	for i := range flood {
		id := [16]byte{5}
		id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16)
		c.add("k", "+1"+strconv.Itoa(i), now.Add(-30*time.Minute+time.Duration(i)), id)
	}
	if got := c.count("k", alice, now); got != 2 {
		t.Fatalf("after a flood: %d verifications of the sender in 24 h, want 2", got)
	}
	if got := c.count("k2", alice, now); got != 1 {
		t.Fatalf("another key: %d", got)
	}
	later := now.Add(senderWindow)
	c.sweep(later)
	if got := c.len(); got != 0 {
		t.Fatalf("%d entries held a day later", got)
	}
	if _, queued := c.queue.front(); c.t.n != 0 || c.t.slots != nil || queued || len(c.queue.chunks) != 0 {
		t.Fatalf("the flood's memory was not given back: %d senders in %d slots, queue chunks %d", c.t.n, len(c.t.slots), len(c.queue.chunks))
	}
	// Adding a verification twice (a snapshot held it and the log replays
	// it) counts it once.
	c.add("k", alice, later, [16]byte{9})
	c.add("k", alice, later, [16]byte{9})
	if got := c.count("k", alice, later); got != 1 {
		t.Fatalf("a verification added twice counts %d", got)
	}
}

// TestSenderCountsAcrossRestart: the sender counts come back after a
// crash, from the snapshot and from the log after it.
func TestSenderCountsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	wa2 := matcher.Route{Channel: matcher.ChannelWhatsApp, To: to2}
	verify := func(m *Store, key, code string) matcher.Session {
		t.Helper()
		s, _, err := m.createOnce(matcher.CreateRequest{Key: key, Number: alice, Code: code, To: to2, Routes: []matcher.Route{wa2}, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if o := ingest(t, m, matcher.Message{Provider: "meta", MessageID: code, From: alice, To: to2, Channel: matcher.ChannelWhatsApp, Text: code}); o.Kind != matcher.Matched {
			t.Fatalf("verify %s: %+v", code, o)
		}
		got, err := m.get(s.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	verify(m, "k", "111111")
	verify(m, "k2", "222222")
	if err := m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour)
	verify(m, "k", "333333") // in the log only
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	if got := verify(m2, "k", "444444").Signals.SenderSessions24h; got != 2 {
		t.Fatalf("after a restart: %d sessions of the sender in 24 h, want 2", got)
	}
	c.Add(23*time.Hour + 30*time.Minute) // the first is now past the window
	if got := verify(m2, "k", "555555").Signals.SenderSessions24h; got != 2 {
		t.Fatalf("a day later: %d, want 2", got)
	}
}

// TestOlderSnapshotSeedsSenderCounts: a snapshot of payload version 2
// (sessions of record version 1, no sender counts) opens, its sessions read
// with the one route {sms, to}, and its verified sessions of the last 24 h
// count for their senders.
func TestOlderSnapshotSeedsSenderCounts(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	src := New(Options{Now: c.Now, Retention: 48 * time.Hour})
	mk := func(number, code string) string {
		s, _, err := src.createOnce(matcher.CreateRequest{Key: "k", Number: number, Code: code, To: to, TTL: 48 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s.ID
	}
	old := mk(alice, "111111")
	ingest(t, src, matcher.Message{Provider: "tw", MessageID: "SM1", From: alice, To: to, Text: "111111"})
	c.Add(2 * time.Hour)
	recent := mk(alice, "222222")
	ingest(t, src, matcher.Message{Provider: "tw", MessageID: "SM2", From: alice, To: to, Text: "222222"})
	pending := mk(mallet, "333333")
	c.Add(23 * time.Hour) // old was verified 25 h ago, recent 23 h ago

	e := enc{}
	e.u8(2)
	for range numShards {
		e.uv(0) // cuts
	}
	e.uv(0) // global cut
	for i := range src.shards {
		var sec enc
		sec.uv(uint64(src.shards[i].byID.len()))
		for s := range src.shards[i].byID.all() {
			s.proof = nil // what version 1 did not know
			var v2 enc
			v2.compact(s)
			// A session of record version 1: the same without the
			// trailing routes, client country and proof (all empty here).
			const v2Tail = 1 + 1 + 6 + 1 + 1 + 1
			tail := v2.b[len(v2.b)-v2Tail:]
			if !bytes.Equal(tail, make([]byte, v2Tail)) {
				t.Fatalf("tail %x", tail)
			}
			sec.b = append(sec.b, v2.b[:len(v2.b)-v2Tail]...)
		}
		e.bytes(sec.b)
	}
	e.uv(0) // processed
	e.uv(0) // parts
	e.uv(0) // unmatched events
	if err := wal.WriteSnapshot(wal.OS{}, dir, snapshotName, e.b); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{Now: c.Now, Retention: 48 * time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, id := range []string{old, recent, pending} {
		s, err := m.get(id)
		if err != nil {
			t.Fatal(err)
		}
		if want := []matcher.Route{{Channel: matcher.ChannelSMS, To: to}}; len(s.Routes) != 1 || s.Routes[0] != want[0] {
			t.Fatalf("routes of a version 1 session: %v", s.Routes)
		}
	}
	if got := m.senders.count("k", alice, c.Now()); got != 1 {
		t.Fatalf("seeded count %d, want 1 (the verification 23 h ago, not the one 25 h ago)", got)
	}
	if o := ingest(t, m, matcher.Message{Provider: "tw", MessageID: "SM3", From: mallet, To: to, Text: "333333"}); o.Kind != matcher.Matched {
		t.Fatalf("the pending session of a version 2 snapshot: %+v", o)
	}
}

// TestRoutesConcurrent: sessions with routes on two numbers, proven,
// cancelled, superseded and expired concurrently from both numbers: each
// is verified at most once, and the indexes and counts agree at the end
// (run with -race: a pending session changes only under every shard that
// indexes it).
func TestRoutesConcurrent(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := New(Options{Now: c.Now, Retention: time.Hour})
	sms1 := matcher.Route{Channel: matcher.ChannelSMS, To: to}
	wa2 := matcher.Route{Channel: matcher.ChannelWhatsApp, To: to2}
	var wg sync.WaitGroup
	var mu sync.Mutex
	matched := map[string]int{}
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				from := "+1415600" + strconv.Itoa(1000+g*10+i%3)
				routes := []matcher.Route{sms1, wa2}
				if i%2 == 1 {
					routes = []matcher.Route{wa2, sms1}
				}
				s, _, err := m.createOnce(matcher.CreateRequest{Key: "k" + strconv.Itoa(i%2), Number: from, Code: strconv.Itoa(100000 + i),
					To: routes[0].To, Routes: routes, TTL: time.Duration(i%5) * time.Millisecond})
				if err != nil {
					t.Error(err)
					return
				}
				var inner sync.WaitGroup
				for _, msg := range []matcher.Message{
					{Provider: "tw", MessageID: s.ID + "sms", From: from, To: to, Text: s.Code},
					{Provider: "meta", MessageID: s.ID + "wa", From: from, To: to2, Channel: matcher.ChannelWhatsApp, Text: s.Code},
				} {
					inner.Go(func() {
						o, err := m.ingestOnce(msg, matcher.IngestOptions{})
						if err != nil {
							t.Error(err)
						}
						if o.Kind == matcher.Matched {
							mu.Lock()
							matched[o.SessionID]++
							mu.Unlock()
						}
					})
				}
				if i%4 == 0 {
					inner.Go(func() { _, _ = m.cancel(s.ID) })
				}
				if i%7 == 0 {
					inner.Go(func() { _ = m.Sweep() })
				}
				inner.Wait()
			}
		})
	}
	wg.Wait()
	for id, n := range matched {
		if n != 1 {
			t.Errorf("%s verified %d times", id, n)
		}
	}
	c.Add(time.Minute)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := m.pendingByNumber(); len(got) != 0 || m.Pending() != 0 {
		t.Fatalf("pending after every session finished: %v (%d)", got, m.Pending())
	}
	for i := range m.shards {
		if sh := &m.shards[i]; sh.byPair.len() != 0 || len(sh.byCode) != 0 {
			t.Fatalf("shard %d keeps index entries of finished sessions: %d pairs, %d codes", i, sh.byPair.len(), len(sh.byCode))
		}
	}
}

// FuzzLoadSnapshot: a snapshot payload, whatever its bytes, loads or is
// refused with an error, never a panic; one that loads is written again
// by this build into a payload that loads too. Seeds: the golden
// snapshots of every version.
func FuzzLoadSnapshot(f *testing.F) {
	for _, dir := range []string{"testdata/golden-v1/data", "testdata/golden-v2/data"} {
		b, err := wal.ReadSnapshot(wal.OS{}, dir, snapshotName)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := time.Date(2026, 1, 1, 12, 10, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		m := New(Options{Now: func() time.Time { return now }, Retention: 24 * time.Hour})
		if _, _, err := m.loadSnapshot(b); err != nil {
			return
		}
		payload, _, _ := m.snapshotPayload(func() uint64 { return 0 }, now)
		again := New(Options{Now: func() time.Time { return now }, Retention: 24 * time.Hour})
		if _, _, err := again.loadSnapshot(payload); err != nil {
			t.Fatalf("a loaded snapshot, written again, does not load: %v", err)
		}
	})
}

// TestSortByTime: the radix sort of the restored entries orders by time
// and keeps ties in snapshot order, as a stable comparison sort does, over
// a day, a few equal times, and times far apart (a clock set far ahead).
func TestSortByTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano()
	for _, span := range []int64{0, 1000, int64(senderWindow), math.MaxInt64 / 2} {
		var ps []timePos
		for i := range 5000 {
			at := base + rng.Int64N(span+1)
			if i%7 == 0 && i > 0 {
				at = ps[i-1].at // a tie
			}
			ps = append(ps, timePos{at, uint64(i)})
		}
		want := slices.Clone(ps)
		slices.SortStableFunc(want, func(a, b timePos) int { return cmp.Compare(a.at, b.at) })
		if got := sortByTime(ps); !slices.Equal(got, want) {
			t.Fatalf("span %d: sorted differently", span)
		}
	}
}

// TestSenderCountsWindowEnds: a count is exact at both ends of the window
// whatever order entries came in — one later than the count's time (a
// concurrent step's, or a replayed one's) is not counted yet, one just
// past the window no more — for a sender of one entry and of many.
func TestSenderCountsWindowEnds(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var c senderCounts
	c.add("k", alice, now.Add(time.Second), [16]byte{1}) // later than now
	if got := c.count("k", alice, now); got != 0 {
		t.Fatalf("one entry, later than now: counted %d", got)
	}
	c.add("k", alice, now.Add(-time.Hour), [16]byte{2})
	c.add("k", alice, now.Add(-2*time.Hour), [16]byte{3}) // out of order
	c.add("k", alice, now.Add(-senderWindow), [16]byte{4})
	c.add("k", mallet, now.Add(-time.Hour), [16]byte{5})
	c.add("k", mallet, now.Add(-time.Minute), [16]byte{6})
	for _, tc := range []struct {
		sender string
		at     time.Time
		want   int
	}{
		{alice, now.Add(-time.Hour - time.Nanosecond), 2}, // before the entry an hour ago
		{alice, now.Add(-time.Hour), 3},
		{alice, now, 3}, // the entry at the window's edge counts
		{alice, now.Add(time.Nanosecond), 2},
		{alice, now.Add(time.Second), 3},
		{mallet, now, 2}, // both ends inside
		{mallet, now.Add(-2 * time.Minute), 1},
	} {
		if got := c.count("k", tc.sender, tc.at); got != tc.want {
			t.Fatalf("%s at %v: counted %d, want %d", tc.sender, tc.at.Sub(now), got, tc.want)
		}
	}
	c.add("k", mallet, now.Add(time.Second), [16]byte{7}) // the newest: appended
	c.add("k", mallet, now.Add(time.Second), [16]byte{7}) // again: counted once
	if got := c.count("k", mallet, now.Add(time.Second)); got != 3 {
		t.Fatalf("after appending: %d, want 3", got)
	}
	if got := c.count("k", mallet, now); got != 2 {
		t.Fatalf("the appended entry is later than now: %d, want 2", got)
	}
	// A sender of one entry (held in its list itself) at either end of the
	// window: counted, as in a count and in a countAndAdd.
	const carol, dave = "+14155550177", "+14155550188"
	c.add("k", dave, now, [16]byte{10})
	if got := c.count("k", dave, now); got != 1 {
		t.Fatalf("one entry at the count's time: counted %d", got)
	}
	c.add("k", carol, now.Add(-senderWindow), [16]byte{8})
	if got := c.count("k", carol, now); got != 1 {
		t.Fatalf("one entry on the window's edge: counted %d", got)
	}
	if got := c.countAndAdd("k", carol, hashString(carol), now.UnixNano(), [16]byte{9}); got != 1 {
		t.Fatalf("one entry on the window's edge: countAndAdd counted %d", got)
	}
	// A new sender's empty list (its entry zero, at 0) counts nothing,
	// even within a day of the epoch, where a time of 0 is in the window.
	var e senderCounts
	if got := e.countAndAdd("k", alice, hashString(alice), time.Unix(3600, 0).UnixNano(), [16]byte{1}); got != 0 {
		t.Fatalf("a new sender, an hour after the epoch: counted %d", got)
	}
}

// TestCountAndAddIsCountThenAdd: the live verification's count and add in
// one step (one lock, one probe) leaves the counts exactly as count then
// add did, and returns the same count, over random verifications of a few
// senders, in time order with the jitter of concurrent steps, across the
// window's expiry, with an entry's id repeated now and then.
func TestCountAndAddIsCountThenAdd(t *testing.T) {
	var one, two senderCounts
	rnd := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	keys, froms := []string{"k", "k2"}, []string{alice, mallet, "+14155550199"}
	var at time.Time
	var id [16]byte
	for i := range 20_000 {
		key, from := keys[rnd.IntN(len(keys))], froms[rnd.IntN(len(froms))]
		if i == 0 || rnd.IntN(50) != 0 { // else the last entry again
			now = now.Add(time.Duration(rnd.Int64N(int64(20 * time.Minute)))) // past the window in some 150 steps
			at = now.Add(-time.Duration(rnd.IntN(int(time.Second))))          // jitter: not always the newest
			id = [16]byte{byte(i), byte(i >> 8), 1}
		}
		want := one.count(key, from, at)
		one.add(key, from, at, id)
		if got := two.countAndAdd(key, from, hashString(from), at.UnixNano(), id); got != want {
			t.Fatalf("step %d: countAndAdd counted %d, count %d", i, got, want)
		}
		if a, b := one.len(), two.len(); a != b {
			t.Fatalf("step %d: %d entries held after countAndAdd, %d after count and add", i, b, a)
		}
		for _, k := range keys {
			for _, f := range froms {
				if a, b := one.count(k, f, now), two.count(k, f, now); a != b {
					t.Fatalf("step %d: %s %s counts %d after count and add, %d after countAndAdd", i, k, f, a, b)
				}
			}
		}
	}
	if one.len() != two.len() || one.t.n != two.t.n {
		t.Fatalf("held %d entries of %d senders, want %d of %d", two.len(), two.t.n, one.len(), one.t.n)
	}
}

// TestCountAndAddSenderExpiresInCall: a sender whose only entry leaves the
// window in the very call that adds its next one keeps the new entry:
// countAndAdd expires before it finds the sender's slot (expiring after
// could free the table the slot is in, and the entry went with it).
func TestCountAndAddSenderExpiresInCall(t *testing.T) {
	var c senderCounts
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c.countAndAdd("k", alice, hashString(alice), t0.UnixNano(), [16]byte{1})
	c.countAndAdd("k", mallet, hashString(mallet), t0.Add(time.Hour).UnixNano(), [16]byte{2})
	for i, s := range []string{alice, mallet} {
		at := t0.Add(25*time.Hour + time.Duration(i)*time.Hour)
		if n := c.countAndAdd("k", s, hashString(s), at.UnixNano(), [16]byte{3, byte(i)}); n != 0 {
			t.Fatalf("%s counted %d", s, n)
		}
		if n := c.count("k", s, at); n != 1 {
			t.Fatalf("%s: %d entries in the window after countAndAdd, want 1", s, n)
		}
	}
}

// TestCountAndAddExpiresAtTheEdge: countAndAdd forgets an entry exactly
// when expire would, to the nanosecond: an entry of another sender, a day
// and d ns before the verification, is gone for d > 0 and kept for d <= 0
// (countAndAdd checks the queue's front itself before calling expire).
func TestCountAndAddExpiresAtTheEdge(t *testing.T) {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for d := -2; d <= 2; d++ {
		var c senderCounts
		c.add("k", alice, at, [16]byte{1})
		c.countAndAdd("k", mallet, hashString(mallet), at.Add(senderWindow+time.Duration(d)).UnixNano(), [16]byte{2})
		want := 2
		if d > 0 {
			want = 1
		}
		if got := c.len(); got != want {
			t.Errorf("verification a day and %d ns after the entry: %d entries held, want %d", d, got, want)
		}
	}
}

// TestEmptySenderSlotsAreZero: every empty slot of the sender table is all
// zero, its entries included, whatever adds, expiries, deletions and
// resizes came before: getOrAddHashed gives a new sender a slot by
// writing its hash and key alone (review R2: with del clearing only the
// hash, a new sender took over the entries of the one before).
func TestEmptySenderSlotsAreZero(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 9))
	var c senderCounts
	now := time.Unix(1_700_000_000, 0)
	check := func(step int) {
		t.Helper()
		for i, s := range c.t.slots {
			if s.h == 0 && s != (senderSlot{}) {
				t.Fatalf("step %d: empty slot %d is not zero: %+v", step, i, s)
			}
		}
	}
	for step := range 20_000 {
		switch r := rnd.IntN(100); {
		case r < 2: // past the window: most senders expire, the table shrinks
			now = now.Add(senderWindow + time.Duration(rnd.Int64N(int64(time.Hour))))
		case r < 40:
			now = now.Add(time.Duration(rnd.Int64N(int64(20 * time.Minute))))
		}
		key := "k" + strconv.Itoa(rnd.IntN(2))
		sender := "+1415555" + strconv.Itoa(rnd.IntN(3000))
		id := [16]byte{1, byte(step), byte(step >> 8)}
		if rnd.IntN(3) == 0 {
			c.add(key, sender, now.Add(-time.Duration(rnd.Int64N(int64(time.Hour)))), id)
		} else {
			c.countAndAdd(key, sender, hashString(sender), now.UnixNano(), id)
		}
		check(step)
	}
	if c.len() == 0 {
		t.Fatal("no sender left counted: the steps never filled the table")
	}
}
