package memstore

import (
	"runtime"
	"testing"
	"unsafe"
)

// TestDueSessionsLog: the event table's log of session events finds every
// entry by id — leased or not, before and after compactions — forgets the
// removed ones, and gives its memory back as events leave.
func TestDueSessionsLog(t *testing.T) {
	var d dueSessions
	const n = 5 * dueChunk
	ss := make([]*session, n)
	for i := range ss {
		ss[i] = &session{finished: int64(i)}
		ss[i].id[0], ss[i].id[1], ss[i].id[2] = byte(i%numShards), byte(i), byte(i>>8)
		d.add(dueSession{s: ss[i], attempts: i})
	}
	// Lease every third entry, as ClaimEvents does: through the log.
	for e := range d.all() {
		if e.attempts%3 == 0 {
			d.lease(e)
		}
	}
	check := func(stage string, gone func(i int) bool) {
		t.Helper()
		live := 0
		for i, s := range ss {
			e := d.get(s.id)
			switch {
			case gone(i) && e != nil:
				t.Fatalf("%s: entry %d found after its removal", stage, i)
			case !gone(i) && (e == nil || e.s != s || e.attempts != i):
				t.Fatalf("%s: entry %d: %+v", stage, i, e)
			case !gone(i):
				live++
			}
		}
		if d.len() != live {
			t.Fatalf("%s: len %d, want %d", stage, d.len(), live)
		}
		prev := -1
		for e := range d.all() {
			if e.attempts <= prev {
				t.Fatalf("%s: the log is out of order: %d after %d", stage, e.attempts, prev)
			}
			prev = e.attempts
		}
	}
	check("added", func(int) bool { return false })
	// Remove all but every eighth: the holes outnumber the entries, and
	// the log is compacted (more than once) on the way.
	for i, s := range ss {
		if i%8 != 0 {
			d.del(s.id)
		}
	}
	check("removed", func(i int) bool { return i%8 != 0 })
	if d.n != d.len() && d.n-d.len() >= dueChunk {
		t.Fatalf("not compacted: %d slots for %d entries", d.n, d.len())
	}
	for _, e := range d.leased {
		if e.s == nil || e.attempts%3 != 0 {
			t.Fatalf("a leased entry points at %+v after compaction", e)
		}
	}
	d.deleteFunc(func(e *dueSession) bool { return e.s.finished < n/2 })
	check("dropped", func(i int) bool { return i%8 != 0 || i < n/2 })
	for _, s := range ss {
		d.del(s.id)
	}
	if d.len() != 0 || d.n >= dueChunk || len(d.leased) != 0 || d.index != nil {
		t.Fatalf("emptied: %d entries, %d slots, %d leased, index %v", d.len(), d.n, len(d.leased), d.index != nil)
	}
}

// TestEventTableBytesPerEvent: a session's event enters the table as one
// entry at the end of its log — no hash table of every undelivered event
// grows (and rehashes) under the step that verifies: the heap allocated
// per event added, with the table holding 200k, is the entry's share of a
// chunk.
func TestEventTableBytesPerEvent(t *testing.T) {
	const n = 200_000
	ss := make([]*session, n)
	for i := range ss {
		ss[i] = &session{}
		ss[i].id[0], ss[i].id[1], ss[i].id[2], ss[i].id[3] = byte(i%numShards), byte(i), byte(i>>8), byte(i>>16)
	}
	var m events
	m.init()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range ss {
		m.addSessions(ss[i:i+1], committed{})
	}
	runtime.ReadMemStats(&after)
	if m.sessions.len() != n {
		t.Fatalf("%d events held", m.sessions.len())
	}
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	if max := float64(unsafe.Sizeof(dueSession{})) + 8; per > max {
		t.Errorf("%.1f bytes allocated per event added, want at most %.0f", per, max)
	}
}

// TestDueIndexGoesOnWhereItStopped: once every entry the lazy index held is
// gone, the index's memory goes back but its place in the log stays: the
// next lookup that misses the leases does not walk the holes before it
// again (recovery replaying "verified, delivered" pairs did, once a pair).
func TestDueIndexGoesOnWhereItStopped(t *testing.T) {
	var d dueSessions
	ss := make([]*session, 10)
	for i := range ss {
		ss[i] = &session{}
		ss[i].id[1] = byte(i + 1)
		d.add(dueSession{s: ss[i]})
	}
	d.get(ss[0].id) // indexes the log
	for _, s := range ss {
		d.del(s.id)
	}
	if d.index != nil || d.indexed != len(ss) {
		t.Fatalf("index %v, indexed %d: want nil and %d", d.index, d.indexed, len(ss))
	}
	late := &session{}
	late.id[1] = 99
	d.add(dueSession{s: late})
	if e := d.get(late.id); e == nil || e.s != late {
		t.Fatalf("an entry added after the index emptied is not found: %+v", e)
	}
}

// TestDueDuplicateThenCompact: were a session's event ever added twice
// (nothing checks it), emptying the index and compacting must not write
// to the index it gave back: a crash of the whole process under the
// events lock, where the duplicate alone costs a second delivery.
func TestDueDuplicateThenCompact(t *testing.T) {
	var d dueSessions
	a, s := &session{}, &session{}
	a.id[1], s.id[1] = 1, 2
	d.add(dueSession{s: a})
	d.add(dueSession{s: s})
	d.add(dueSession{s: s}) // the duplicate
	d.get(a.id)             // indexes a, and s as its later copy
	d.del(a.id)
	d.del(s.id) // the index empties; s's first copy lives on before indexed
	for i := range 2 * dueChunk {
		f := &session{}
		f.id[2], f.id[3] = byte(i), byte(i>>8)
		d.add(dueSession{s: f, until: 1})
	}
	d.deleteFunc(func(e *dueSession) bool { return e.until == 1 }) // compacts, as dropSessionsBefore does
	if d.live != 1 {
		t.Fatalf("%d entries live, want the duplicate's one", d.live)
	}
}
