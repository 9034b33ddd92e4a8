package memstore

import (
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// TestDedupeOutlivesFlood floods the dedupe table with far more than a
// million processed ids and spent nonces within the retention: the first
// message and the first nonce are still refused afterwards, and everything
// is forgotten once the retention has passed.
func TestDedupeOutlivesFlood(t *testing.T) {
	const flood = 1_300_000 // well past 2^20
	m, c, _ := newTest(t)
	s := create(t, m, alice, "482913")
	old := sms(alice, "000000") // a wrong code: one attempt
	if o := ingest(t, m, old); o.Kind != matcher.Attempted || o.SessionID != s.ID {
		t.Fatalf("first delivery: %+v", o)
	}
	if fresh, err := m.spendNonce("plivo", "old-nonce"); !fresh || err != nil {
		t.Fatalf("first spend: %v %v", fresh, err)
	}
	// Half the flood as messages (through Ingest), half as nonces, over
	// 50 minutes of a 1 h retention.
	const messages = 20_000
	for i := range messages {
		o := ingest(t, m, matcher.Message{Provider: "bw", MessageID: "flood-" + strconv.Itoa(i), From: mallet, To: to, Text: "hi"})
		if o.Duplicate {
			t.Fatalf("flood message %d: duplicate", i)
		}
	}
	d := &m.dedupe
	var now time.Time
	for i := range flood - messages {
		if i%26_000 == 0 {
			c.Add(time.Minute)
			now = c.Now()
		}
		// What SpendNonce does, without the journal and the wait for a
		// concurrent spend, so that the flood is quick under -race.
		key := seenKeyOf("bw", nonceMessageID(strconv.Itoa(i)))
		d.mu.Lock()
		d.expire(now)
		if _, ok := d.done[key]; ok {
			t.Fatalf("flood nonce %d: not fresh", i)
		}
		d.add(key, matcher.Outcome{Kind: matcher.NonceSpent}, now.UnixMilli())
		d.mu.Unlock()
	}
	if n := m.Remembered(); n != flood+2 {
		t.Fatalf("remembered %d ids, want %d", n, flood+2)
	}

	o := ingest(t, m, old)
	if !o.Duplicate || o.Kind != matcher.Attempted || o.SessionID != s.ID {
		t.Fatalf("old message after the flood: %+v, want the duplicate of the first outcome", o)
	}
	if got := get(t, m, s.ID); got.Attempts != 1 {
		t.Fatalf("old message counted again: %d attempts", got.Attempts)
	}
	if fresh, err := m.spendNonce("plivo", "old-nonce"); fresh || err != nil {
		t.Fatalf("old nonce after the flood: fresh=%v err=%v, want spent", fresh, err)
	}

	// Past the retention of the first ones and of most of the flood, not
	// of its last minutes: the maps are copied into smaller ones.
	c.Add(48 * time.Minute)
	if fresh, err := m.spendNonce("plivo", "old-nonce"); !fresh || err != nil {
		t.Fatalf("old nonce past the retention: fresh=%v err=%v, want forgotten", fresh, err)
	}
	if n := m.Remembered(); n <= 1 || n >= flood/4 {
		t.Fatalf("remembered %d ids past most of the flood's retention", n)
	}
	if d.peak >= flood/4 {
		t.Fatalf("maps not shrunk: peak %d", d.peak)
	}
	if fresh, err := m.spendNonce("bw", strconv.Itoa(flood-messages-1)); fresh || err != nil {
		t.Fatalf("the flood's last nonce: fresh=%v err=%v, want spent", fresh, err)
	}
	c.Add(time.Hour)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if n := m.Remembered(); n != 0 {
		t.Fatalf("remembered %d ids past everyone's retention, want 0", n)
	}
}

// TestDedupeAcrossRestart: processed ids and spent nonces come back from
// the snapshot and from the log, each for the rest of its own retention.
func TestDedupeAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c) // retention 1h
	s := create(t, m, alice, "482913")
	early := sms(alice, "482913")
	ingest(t, m, early)
	if fresh, err := m.spendNonce("plivo", "early"); !fresh || err != nil {
		t.Fatal(fresh, err)
	}
	if err := m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	c.Add(40 * time.Minute)
	late := sms(mallet, "hello")
	ingest(t, m, late)
	if fresh, err := m.spendNonce("plivo", "late"); !fresh || err != nil {
		t.Fatal(fresh, err)
	}
	// A crash: the early ones are in the snapshot, the late ones in the log.
	c.Add(10 * time.Minute)
	m2 := openDurable(t, dir, c)
	if n := m2.Remembered(); n != 4 {
		t.Fatalf("remembered %d ids after the crash, want 4", n)
	}
	if o := ingest(t, m2, early); !o.Duplicate || o.Kind != matcher.Matched || o.SessionID != s.ID {
		t.Fatalf("early message after the crash: %+v", o)
	}
	for _, n := range []string{"early", "late"} {
		if fresh, err := m2.spendNonce("plivo", n); fresh || err != nil {
			t.Fatalf("nonce %s after the crash: fresh=%v err=%v", n, fresh, err)
		}
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	// Past the early ones' retention, not the late ones'.
	c.Add(20 * time.Minute)
	m3 := openDurable(t, dir, c)
	defer m3.Close()
	if n := m3.Remembered(); n != 2 {
		t.Fatalf("remembered %d ids past the early ones' retention, want 2", n)
	}
	if o := ingest(t, m3, late); !o.Duplicate || o.Kind != matcher.Unmatched {
		t.Fatalf("late message: %+v", o)
	}
	if fresh, err := m3.spendNonce("plivo", "late"); fresh || err != nil {
		t.Fatalf("late nonce: fresh=%v err=%v", fresh, err)
	}
	if fresh, err := m3.spendNonce("plivo", "early"); !fresh || err != nil {
		t.Fatalf("early nonce past its retention: fresh=%v err=%v", fresh, err)
	}
}

// TestSnapshotVersion1Dedupe reads the processed ids of a snapshot written
// before keys were hashed (payload version 1).
func TestSnapshotVersion1Dedupe(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	e := enc{}
	e.u8(1)
	for range numShards {
		e.uv(0) // cuts
	}
	e.uv(0) // global cut
	for range numShards {
		e.bytes([]byte{0}) // no sessions
	}
	e.uv(3)
	for _, p := range []struct {
		key  string
		kind matcher.OutcomeKind
		at   time.Time
	}{
		{"tw\x00SM1", matcher.Unmatched, c.Now().Add(-10 * time.Minute)},
		{"tw\x00SM0", matcher.Unmatched, c.Now().Add(-50 * time.Minute)},                      // older, after in the file
		{"plivo\x00" + nonceMessageID("n1"), matcher.NonceSpent, c.Now().Add(-2 * time.Hour)}, // past retention
	} {
		e.str(p.key)
		e.u8(uint8(p.kind))
		e.str("")
		e.time(p.at)
	}
	e.uv(0) // parts
	e.uv(0) // unmatched events
	if err := wal.WriteSnapshot(wal.OS{}, dir, snapshotName, e.b); err != nil {
		t.Fatal(err)
	}
	m := openDurable(t, dir, c)
	defer m.Close()
	if n := m.Remembered(); n != 2 {
		t.Fatalf("remembered %d ids, want 2", n)
	}
	if o := ingest(t, m, matcher.Message{Provider: "tw", MessageID: "SM1", From: mallet, To: to, Text: "x"}); !o.Duplicate || o.Kind != matcher.Unmatched {
		t.Fatalf("message of a version 1 snapshot: %+v", o)
	}
	if fresh, err := m.spendNonce("plivo", "n1"); !fresh || err != nil {
		t.Fatalf("nonce past retention: fresh=%v err=%v", fresh, err)
	}
	// Loaded oldest first: SM0 leaves at its own retention, not SM1's.
	c.Add(15 * time.Minute)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if n := m.Remembered(); n != 2 { // SM1 and n1
		t.Fatalf("remembered %d ids after SM0's retention, want 2", n)
	}
}
