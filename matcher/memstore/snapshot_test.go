package memstore

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// snapshotPayloadWhole is the snapshot payload as it was built before its
// parts were written as they are: each shard's section one buffer of its
// sessions encoded with their ids rendered as strings, every section
// copied into the payload after the cuts. The reference snapshotParts
// must match byte for byte.
func (m *Store) snapshotPayloadWhole(lastLSN func() uint64, now time.Time) []byte {
	var cuts [numShards]uint64
	var sections [numShards][]byte
	for i := range m.shards {
		sh := &m.shards[i]
		var e enc
		sh.mu.Lock()
		cuts[i] = lastLSN()
		e.uv(uint64(sh.byID.len()))
		for s := range sh.byID.all() {
			e.compactRendered(s)
		}
		sh.mu.Unlock()
		sections[i] = e.b
	}
	global, processed := m.dedupe.snapshotWhole(lastLSN())
	e := enc{b: make([]byte, 0, 1<<16)}
	e.u8(snapshotVersion)
	for _, c := range cuts {
		e.uv(c)
	}
	e.uv(global)
	for i := range sections {
		e.bytes(sections[i])
	}
	e.b = append(e.b, processed...)
	m.parts.snapshot(&e)
	m.events.snapshot(&e)
	m.senders.snapshot(&e, now)
	return e.b
}

// snapshotWhole is dedupe.snapshot as it was: its entries copied after
// their count.
func (d *dedupe) snapshotWhole(last uint64) (global uint64, section []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	global = d.cut(last)
	entries := enc{b: make([]byte, 0, 26*d.size.Load())}
	count := 0
	d.each(func(k seenKey, o matcher.Outcome, atMS int64) {
		entries.b = append(entries.b, k[:]...)
		entries.u8(uint8(o.Kind))
		entries.str(o.SessionID)
		entries.time(time.UnixMilli(atMS))
		count++
	})
	e := enc{b: make([]byte, 0, len(entries.b)+binary.MaxVarintLen64)}
	e.uv(uint64(count))
	e.b = append(e.b, entries.b...)
	return global, e.b
}

// randomStore returns a store holding n random sessions (randomSession),
// one in 50 with metadata of a few KiB (larger than a chunk's room), and
// n/2 processed messages.
func randomStore(t testing.TB, n int, seed uint64) *Store {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed))
	m := New(Options{})
	seen := map[[16]byte]bool{} // randomSession repeats the ids of the alphabet's edges
	for i := 0; i < n; {
		s := randomSession(t, r)
		if seen[s.id] || seen[s.token] {
			continue
		}
		seen[s.id], seen[s.token] = true, true
		if i%50 == 0 {
			s.extra().metadata = bytes.Repeat([]byte{byte(i)}, 1000+r.IntN(4000))
		}
		m.restore(s)
		i++
	}
	// Processed messages, half of them with a session id.
	now := time.Now()
	m.dedupe.mu.Lock()
	for i := range n / 2 {
		o := matcher.Outcome{Kind: matcher.Unmatched}
		if i%2 == 0 {
			o = matcher.Outcome{Kind: matcher.Matched, SessionID: newID("vrf_", i%numShards)}
		}
		m.dedupe.add(seenKeyOf("twilio", "SM"+strconv.Itoa(i)), o, now.Add(time.Duration(i-n)*time.Second).UnixMilli())
	}
	m.dedupe.mu.Unlock()
	return m
}

// TestSnapshotPartsBytes: the snapshot's parts, sections in chunks, make
// the payload built whole as before, byte for byte (sections of no
// session, of a few, of several chunks, with sessions larger than a
// chunk's room), and the file written from them is the file written from
// that payload.
func TestSnapshotPartsBytes(t *testing.T) {
	now := time.Now()
	lsn := func() uint64 { return 12345 }
	for _, n := range []int{0, 10, 300, 70_000} {
		m := randomStore(t, n, uint64(n))
		if m.Len() != n {
			t.Fatalf("store holds %d sessions, want %d", m.Len(), n)
		}
		want := m.snapshotPayloadWhole(lsn, now)
		parts, _, _ := m.snapshotParts(lsn, now)
		if got := bytes.Join(parts, nil); !bytes.Equal(got, want) {
			t.Fatalf("%d sessions: a payload of %d bytes, want %d bytes as before", n, len(got), len(want))
		}
		if n == 70_000 && len(parts) < 3*numShards {
			t.Errorf("%d sessions in %d parts: the sections span no several chunks", n, len(parts))
		}
		dir := t.TempDir()
		if err := wal.WriteSnapshotParts(nil, dir, "parts", parts); err != nil {
			t.Fatal(err)
		}
		if err := wal.WriteSnapshot(nil, dir, "whole", want); err != nil {
			t.Fatal(err)
		}
		a, errA := os.ReadFile(filepath.Join(dir, "parts"))
		b, errB := os.ReadFile(filepath.Join(dir, "whole"))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("%d sessions: the file of the parts differs from the payload's (%v %v)", n, errA, errB)
		}
	}
}

// TestSnapshotGarbage: a snapshot's parts allocate little more than their
// size, in few allocations (a few per shard, not per session): a section
// grown as one buffer, then copied into a payload grown too, allocated
// about ten times the payload, and every session's id and page token as
// strings two allocations more.
func TestSnapshotGarbage(t *testing.T) {
	const n = 20_000
	m := randomStore(t, n, 7)
	now := time.Now()
	lsn := func() uint64 { return 1 }
	var size int
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	parts, _, _ := m.snapshotParts(lsn, now)
	runtime.ReadMemStats(&after)
	for _, p := range parts {
		size += len(p)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	if allocated > uint64(size)*3/2+64<<10 {
		t.Errorf("a snapshot of %d bytes allocated %d bytes, want at most 1.5 times its size", size, allocated)
	}
	allocs := testing.AllocsPerRun(3, func() { m.snapshotParts(lsn, now) })
	if allocs > n/20 {
		t.Errorf("a snapshot of %d sessions: %v allocations, want at most %d", n, allocs, n/20)
	}
	t.Logf("%d sessions: %d bytes, %d allocated, %v allocations", n, size, allocated, allocs)
}

// TestDedupeSnapshotOneAllocation: the processed messages' section is one
// allocation, its count put before the entries, and the bytes the section
// was when its entries were copied after the count (which grew them
// first, sized for 26 bytes each: five allocations here).
func TestDedupeSnapshotOneAllocation(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 1000} {
		d, section := dayOfIDs(n, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
		if _, want := d.snapshotWhole(0); !bytes.Equal(section, want) {
			t.Fatalf("%d processed ids: section differs from the one copied after its count", n)
		}
		if allocs := testing.AllocsPerRun(10, func() { d.snapshot(0) }); allocs != 1 {
			t.Errorf("%d processed ids: the section takes %v allocations, want 1", n, allocs)
		}
	}
}

// snapshotPayload is snapshotParts joined: the payload whole, as tests
// and the fuzz target read it.
func (m *Store) snapshotPayload(lastLSN func() uint64, now time.Time) (payload []byte, cuts [numShards]uint64, global uint64) {
	parts, cuts, global := m.snapshotParts(lastLSN, now)
	return bytes.Join(parts, nil), cuts, global
}
