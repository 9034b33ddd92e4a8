package memstore

import (
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
)

// checkHomeAddrs checks, for every sender of key in from that the table
// holds, that the address prefetch would load (homeAddr) is that of the
// slot where the table's probe for the sender starts: the home of the
// hash the table stored for it, which is the sender's own slot unless
// another came there first. It returns how many were the sender's own.
func checkHomeAddrs(t *testing.T, c *senderCounts, key string, from []string) int {
	t.Helper()
	own := 0
	for _, s := range from {
		i, ok := c.t.find(senderID{key, s})
		if !ok {
			t.Fatalf("sender %s of key %s not held", s, key)
		}
		home := int(c.t.slots[i].h) & (len(c.t.slots) - 1)
		got, want := c.t.homeAddr(hashString(s)), uintptr(unsafe.Pointer(&c.t.slots[home]))
		if got != want {
			t.Fatalf("%d senders in %d slots, key %s: prefetch of %s at %#x, its probe starts at %#x (slot %d, found in %d)",
				c.t.n, len(c.t.slots), key, s, got, want, home, i)
		}
		if home == i {
			own++
		}
	}
	return own
}

// TestSenderPrefetchAddr: the slot ingest prefetches for a sender is the
// one the table's probe reads first, in tables of every size from 8 slots
// up, after each growth and each halving, for the API key last counted;
// with no table, nothing is prefetched.
func TestSenderPrefetchAddr(t *testing.T) {
	var c senderCounts
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	from := make([]string, 20_000)
	for i := range from {
		from[i] = "+1415" + strconv.Itoa(5_000_000+i)
	}
	if p := c.t.homeAddr(hashString(from[0])); p != 0 {
		t.Fatalf("no table: prefetch at %#x", p)
	}
	// Growing: check after the first sender of each table size.
	size, own, checked := 0, 0, 0
	for i, s := range from {
		c.add("k", s, now.Add(time.Duration(i)), [16]byte{1, byte(i), byte(i >> 8)})
		if len(c.t.slots) != size {
			size = len(c.t.slots)
			own += checkHomeAddrs(t, &c, "k", from[:i+1])
			checked += i + 1
		}
	}
	own += checkHomeAddrs(t, &c, "k", from)
	checked += len(from)
	// Most senders are found in the slot prefetched, or the check above
	// would hold for a prefetch of the wrong slot of a cluster.
	if own*2 < checked {
		t.Fatalf("%d of %d senders in their home slot", own, checked)
	}
	// Another API key: its senders' slots are prefetched once it is the
	// key last counted.
	other := from[:100]
	for i, s := range other {
		c.count("k2", s, now) // hashes k2 with nothing to find
		c.add("k2", s, now.Add(time.Hour+time.Duration(i)), [16]byte{2, byte(i)})
	}
	checkHomeAddrs(t, &c, "k2", other)
	// Shrinking: the senders of key k leave one at a time (expiry),
	// the table halving on the way; then key k2's.
	size = len(c.t.slots)
	for i := range from {
		c.sweep(now.Add(senderWindow + time.Duration(i)))
		if len(c.t.slots) != size {
			size = len(c.t.slots)
			c.count("k", from[len(from)-1], now) // k again the key last hashed
			checkHomeAddrs(t, &c, "k", from[i:])
		}
	}
	checkHomeAddrs(t, &c, "k2", other)
	c.sweep(now.Add(2 * senderWindow))
	if p := c.t.homeAddr(hashString(from[0])); c.t.slots != nil || p != 0 {
		t.Fatalf("no sender left: %d slots, prefetch at %#x", len(c.t.slots), p)
	}
}

// TestPairPrefetchAddr: the slot ingest prefetches for a message's pair
// is the one its shard's probe reads first, in tables of sizes from 8
// slots up (64 shards, each growing its own), before and after sessions
// leave; a shard with no table prefetches nothing.
func TestPairPrefetchAddr(t *testing.T) {
	m := New(Options{})
	from := senders(30_000)
	if p := m.shards[pairShard(to, from[0])].byPair.homeAddr(pairHash(to, hashString(from[0]))); p != 0 {
		t.Fatalf("no table: prefetch at %#x", p)
	}
	check := func(from []string) {
		t.Helper()
		own := 0
		for _, f := range from {
			bp := &m.shards[pairShard(to, f)].byPair
			i := bp.find(bp.hash(to, f), to, f)
			if bp.slots[i].s == nil {
				t.Fatalf("pair of %s not held", f)
			}
			home := int(bp.slots[i].h) & (len(bp.slots) - 1)
			got, want := bp.homeAddr(pairHash(to, hashString(f))), uintptr(unsafe.Pointer(&bp.slots[home]))
			if got != want {
				t.Fatalf("%d pairs in %d slots: prefetch of %s at %#x, its probe starts at %#x (slot %d, found in %d)",
					bp.n, len(bp.slots), f, got, want, home, i)
			}
			if home == i {
				own++
			}
		}
		if own*2 < len(from) {
			t.Fatalf("%d of %d pairs in their home slot", own, len(from))
		}
	}
	made := 0
	for _, n := range []int{1, 10, 100, 1000, 3000, 10_000, len(from)} {
		for ; made < n; made++ {
			if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from[made], Code: "482913", To: to, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
		check(from[:n])
	}
	// Half the sessions verified: their pairs leave the tables, and the
	// others' slots shift back.
	for _, f := range from[:len(from)/2] {
		msg := matcher.Message{Provider: "tw", MessageID: "m" + f, From: f, To: to, Text: "Your code is 482913"}
		if o, err := m.ingest(&msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
			t.Fatal(o, err)
		}
	}
	check(from[len(from)/2:])
}

// TestSlotLines: a slot of the sender counts or of a pair index, 8-byte
// aligned and at most 72 bytes, lies in at most two cache lines, those of
// its first and last bytes, which are what prefetchSlots asks for. A pair
// slot, 16 bytes, may straddle two too: a slot array of more than 512
// bytes is only 8-byte aligned (Go's malloc header comes first).
func TestSlotLines(t *testing.T) {
	for _, slot := range []struct{ size, align uintptr }{
		{unsafe.Sizeof(senderSlot{}), unsafe.Alignof(senderSlot{})},
		{unsafe.Sizeof(pairSlot{}), unsafe.Alignof(pairSlot{})},
	} {
		for off := uintptr(0); off < 64; off += slot.align {
			if first, last := off/64, (off+slot.size-1)/64; last-first > 1 {
				t.Fatalf("a slot of %d bytes at offset %d in a line spans %d lines", slot.size, off, last-first+1)
			}
		}
	}
}

// TestPrefetchAnyAddress: a prefetch neither faults nor reads Go memory,
// whatever the address (a table's address may be stale: homeAddr).
func TestPrefetchAnyAddress(t *testing.T) {
	high := uint64(1) << 47 // past the user half on amd64 (0 on 32-bit builds)
	for _, p := range []uintptr{0, 8, uintptr(high), ^uintptr(0) - 64} {
		prefetchSlots(p, p)
	}
}

// TestSenderPrefetchConcurrent: prefetch reads no table memory and no
// field that counting writes without an atomic, with the table growing and
// shrinking under it: the race detector would see such a read (it does
// for a read of len(t.slots) in homeAddr). One API key: a key changing at
// each count would store keyH each time, and the race detector would take
// those stores as ordering the reads before them.
func TestSenderPrefetchConcurrent(t *testing.T) {
	var c senderCounts
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	const n = 5000
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = hashString("+1" + strconv.Itoa(i))
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, h := range hs {
				prefetchSlots(0, c.t.homeAddr(h))
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	for round := range 3 {
		at := now.Add(time.Duration(round) * 2 * senderWindow)
		for i := range n {
			c.countAndAdd("k", "+1"+strconv.Itoa(i), hs[i], at.UnixNano(), [16]byte{byte(round), byte(i), byte(i >> 8)})
		}
		c.sweep(at.Add(senderWindow + time.Second)) // all expire: the table halves down to none
	}
	close(stop)
	wg.Wait()
}

// TestPairPrefetchConcurrent: a pair's prefetch reads nothing of the
// shard that its lock guards, with the shard's pair table growing under
// it (the race detector would see such a read).
func TestPairPrefetchConcurrent(t *testing.T) {
	m := New(Options{})
	from := senders(20_000)
	var wg sync.WaitGroup
	stop, started := make(chan struct{}), make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pass := 0; ; pass++ {
			for _, f := range from {
				prefetchSlots(m.shards[pairShard(to, f)].byPair.homeAddr(pairHash(to, hashString(f))), 0)
			}
			if pass == 0 {
				close(started)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	<-started // the shards' tables are read before they first grow
	for _, f := range from {
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: f, To: to, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
