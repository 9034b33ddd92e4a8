package memstore

import (
	"encoding/binary"
	"hash/maphash"
	"iter"
	"os"
	"slices"
	"sync/atomic"
	"unsafe"
)

// The shards' indexes of sessions by id, by page token and by pair are hash
// tables of their own rather than Go maps: their keys are the sessions'
// own fields, so a slot holds the session pointer alone (8 bytes; for a
// pair, 16 with its hash), where a Go map's slot holds the key too (24
// bytes by id, 40 by pair) and a control byte. They use linear probing,
// grow at 3/4 full and delete by shifting back, so no tombstones build
// up. BenchmarkMemoryPerSession and TestSessionSize measure the result.

// maxLoad is the fill, in quarters, at which a table doubles.
const maxLoad = 3

// touchPages writes the first slot of each memory page of a table just
// made, front to back. A slot's first access is most often a probe's
// read: on a page the process never touched, that read maps the kernel's
// shared zero page, and the insertion's write then faults a second time
// for a page of its own. Written first, each page faults once (recovery
// fills tables of tens of megabytes: for a day's 1M sessions ~12k faults
// fewer in the id and pair indexes, ~18k in the sender counts' table;
// TestTablePagesFaultOnce).
func touchPages[T any](slots []T) {
	var zero T
	step := max(1, pageSize/int(unsafe.Sizeof(zero)))
	for i := 0; i < len(slots); i += step {
		slots[i] = zero
	}
}

// pageSize is the size of a memory page.
var pageSize = os.Getpagesize()

// idIndex holds sessions by id (or, token set, by page token). Ids and
// tokens are 128 random bits made by newID, so they are their own hash.
type idIndex struct {
	slots []*session
	n     int
	token bool
}

func (t *idIndex) keyOf(s *session) *[16]byte {
	if t.token {
		return &s.token
	}
	return &s.id
}

func hashRaw(k *[16]byte) uint64 {
	h := binary.LittleEndian.Uint64(k[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(k[8:])
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>29
}

func (t *idIndex) len() int { return t.n }

// get returns the session of key k, or nil.
func (t *idIndex) get(k [16]byte) *session {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := int(hashRaw(&k)) & mask; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == nil || *t.keyOf(s) == k {
			return s
		}
	}
}

// put adds s, in place of a session of the same key.
func (t *idIndex) put(s *session) {
	if (t.n+1)*4 > len(t.slots)*maxLoad {
		t.resize(max(8, 2*len(t.slots)))
	}
	k := t.keyOf(s)
	mask := len(t.slots) - 1
	for i := int(hashRaw(k)) & mask; ; i = (i + 1) & mask {
		o := t.slots[i]
		if o == nil {
			t.slots[i] = s
			t.n++
			return
		}
		if *t.keyOf(o) == *k {
			t.slots[i] = s
			return
		}
	}
}

// reserve makes room for n sessions in all, without growing on the way
// (recovery knows a shard's count).
func (t *idIndex) reserve(n int) {
	if size := sizeFor(n, len(t.slots)); size > len(t.slots) {
		t.resize(size)
	}
}

// sizeFor is the slot count, a power of two from cur (at least 8), that
// holds n entries within maxLoad.
func sizeFor(n, cur int) int {
	size := max(8, cur)
	for n*4 > size*maxLoad {
		size *= 2
	}
	return size
}

// resize moves the sessions to a table of size slots (a power of two).
func (t *idIndex) resize(size int) {
	old := t.slots
	t.slots = make([]*session, size)
	touchPages(t.slots)
	t.n = 0
	for _, o := range old {
		if o != nil {
			t.put(o)
		}
	}
}

// del removes the session of key k.
func (t *idIndex) del(k [16]byte) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := int(hashRaw(&k)) & mask
	for ; ; i = (i + 1) & mask {
		s := t.slots[i]
		if s == nil {
			return
		}
		if *t.keyOf(s) == k {
			break
		}
	}
	// Shift back the slots after i whose probe passed through i.
	for j := (i + 1) & mask; t.slots[j] != nil; j = (j + 1) & mask {
		home := int(hashRaw(t.keyOf(t.slots[j]))) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = nil
	t.n--
}

// all yields every session; the table must not change meanwhile.
func (t *idIndex) all() iter.Seq[*session] {
	return func(yield func(*session) bool) {
		for _, s := range t.slots {
			if s != nil && !yield(s) {
				return
			}
		}
	}
}

// pairIndex holds the head of each pair chain (shard.byPair): the oldest
// pending session of a (receiving number, sender) pair. A slot keeps the
// pair's hash (pairHashAt: the sender's part seeded, as senders are chosen
// by whoever sends; the number's part not, as numbers are the pool's) and
// the session, whose own fields confirm the pair.
type pairIndex struct {
	slots []pairSlot
	n     int
	// The slot get found last (its session heads the chain of (lastTo,
	// its sender)), kept until the table changes: a verification removes
	// the session it has just looked up, and replaceHead then needs no
	// hash and no probe.
	last   int
	lastS  *session
	lastTo string
	// resizes counts the tables made: recovery sizes the table once, where
	// growing made and filled a table of each power of two on the way
	// (TestRestoreSizesPairs).
	resizes int
	// Where slots is, published for prefetch, which reads it without the
	// shard's lock: resize writes it under the lock.
	at atomic.Pointer[slotsAt]
}

type pairSlot struct {
	h uint64
	s *session
}

// hashSeed seeds the hashes of the pair tables and of the sender counts
// (senders are chosen by whoever sends), one for the process, so that a
// message's sender is hashed once for both: hashString(msg.From) finds
// its pair and counts its verifications (ingest).
var hashSeed = maphash.MakeSeed()

// hashString is a string's hash under hashSeed.
func hashString(s string) uint64 { return maphash.String(hashSeed, s) }

func (t *pairIndex) hash(to, from string) uint64 { return pairHash(to, hashString(from)) }

// pairHash is the hash of the pair (to, a sender of hash hf).
func pairHash(to string, hf uint64) uint64 { return pairHashAt(fnvNumber(to), hf) }

// pairHashAt is pairHash for a number of state ht (fnvNumber(to)): the
// number's part of the hash is its unseeded FNV state, which its shard
// takes too (ingest hashes the number once, for both); the seeded hash
// of the sender, whoever chooses it, keeps the pair's unpredictable.
// That holds because a session's receiving numbers are the pool's own
// (pool.AssignAvoiding refuses any other): numbers chosen by a client
// could be made to share a slot for one sender (equal FNV states, or equal
// low bits of the product), and a number taken from a request must not
// reach this table unchecked.
func pairHashAt(ht uint32, hf uint64) uint64 { return uint64(ht)*0x9e3779b97f4a7c15 ^ hf }

// holds reports whether s heads or may head the chain of (to, from).
func holds(s *session, to, from string) bool {
	return s.number == from && (s.to == to || s.x != nil && slices.Contains(s.x.nums, to))
}

func (t *pairIndex) len() int { return t.n }

// find returns the slot of (to, from) with hash h, or the empty slot where
// it would go.
func (t *pairIndex) find(h uint64, to, from string) int {
	slots := t.slots // loaded once: the compiler reloads a field each step
	mask := len(slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := &slots[i]
		if e.s == nil || e.h == h && holds(e.s, to, from) {
			return i
		}
	}
}

// get returns the head of the chain of (to, from), or nil. It records
// the slot it found for replaceHead: like every method of the table, it
// writes, and its caller holds the shard's lock (exclusively).
func (t *pairIndex) get(to, from string) *session {
	if t.n == 0 {
		return nil
	}
	return t.getWithHash(to, from, t.hash(to, from))
}

// getWithHash is get for the pair's hash h (t.hash(to, from)). It is
// find and get in one loop (no call, one load of the slots).
func (t *pairIndex) getWithHash(to, from string, h uint64) *session {
	slots := t.slots
	if t.n == 0 {
		return nil
	}
	mask := len(slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := &slots[i]
		if e.s == nil {
			return nil
		}
		if e.h == h && holds(e.s, to, from) {
			t.last, t.lastS, t.lastTo = i, e.s, to
			return e.s
		}
	}
}

// homeAddr returns the address of the slot where a probe for a pair of
// hash h (pairHash) starts, or 0 for no table: what ingest prefetches,
// the first of a verification's dependent misses, which then overlaps the
// work before the shard's lock is taken and the loads of the sender
// counts (prefetch.go). It holds no lock: it reads only what resize
// publishes, and the address may be out of date by the time it is used.
func (t *pairIndex) homeAddr(h uint64) uintptr { return homeAddr[pairSlot](&t.at, h) }

// set makes s the head of the chain of (to, from); s == nil removes it.
func (t *pairIndex) set(to, from string, s *session) {
	if s == nil {
		t.del(to, from)
		return
	}
	t.lastS = nil // slots change
	if (t.n+1)*4 > len(t.slots)*maxLoad {
		t.resize(max(8, 2*len(t.slots)))
	}
	h := t.hash(to, from)
	i := t.find(h, to, from)
	if t.slots[i].s == nil {
		t.n++
	}
	t.slots[i] = pairSlot{h, s}
}

// reserve makes room for n pairs in all, without growing on the way
// (recovery counts a shard's pending sessions before it indexes them).
func (t *pairIndex) reserve(n int) {
	if size := sizeFor(n, len(t.slots)); size > len(t.slots) {
		t.resize(size)
	}
}

// resize moves the pairs to a table of size slots (a power of two).
func (t *pairIndex) resize(size int) {
	t.lastS = nil // slots move
	t.resizes++
	old := t.slots
	t.slots = make([]pairSlot, size)
	publishSlots(&t.at, t.slots)
	touchPages(t.slots)
	mask := size - 1
	for _, e := range old {
		if e.s != nil {
			i := int(e.h) & mask
			for t.slots[i].s != nil {
				i = (i + 1) & mask
			}
			t.slots[i] = e
		}
	}
}

func (t *pairIndex) del(to, from string) {
	if t.n == 0 {
		return
	}
	if i := t.find(t.hash(to, from), to, from); t.slots[i].s != nil {
		t.delAt(i)
	}
}

// replaceHead makes next the head of the chain of (to, s.number) in
// place of s (next == nil: removes the chain), with one probe, and
// reports whether s was the head.
func (t *pairIndex) replaceHead(to string, s, next *session) bool {
	if t.n == 0 {
		return false
	}
	var i int
	if t.lastS == s && t.lastTo == to { // get's pair was (to, s.number)
		i = t.last // the slot get found s in: the table has not changed since
	} else {
		i = t.find(t.hash(to, s.number), to, s.number)
	}
	switch {
	case t.slots[i].s != s:
		return false
	case next != nil:
		t.slots[i].s = next // same pair, same hash
		t.lastS = nil
	default:
		t.delAt(i)
	}
	return true
}

// dropHead is replaceHead(s.to, s, nil) for a session of one number (no
// extra fields): the only chain s can head is (s.to, s.number), so a slot
// get found s in is its slot, with no comparison of the number.
func (t *pairIndex) dropHead(s *session) bool {
	if t.n == 0 {
		return false
	}
	i := t.last
	if t.lastS != s {
		i = t.find(t.hash(s.to, s.number), s.to, s.number)
	}
	if t.slots[i].s != s {
		return false
	}
	t.delAt(i)
	return true
}

// delAt empties the occupied slot i.
func (t *pairIndex) delAt(i int) {
	t.lastS, t.n = nil, t.n-1 // slots move
	slots := t.slots          // loaded once: the compiler reloads a field each step
	mask := len(slots) - 1
	for j := (i + 1) & mask; slots[j].s != nil; j = (j + 1) & mask {
		if (j-int(slots[j].h))&mask >= (j-i)&mask { // its probe passed through i
			slots[i], i = slots[j], j
		}
	}
	slots[i] = pairSlot{}
}

// all yields every pair and the head of its chain, for tests; the table
// must not change meanwhile.
func (t *pairIndex) all() iter.Seq2[pairKey, *session] {
	return func(yield func(pairKey, *session) bool) {
		for _, e := range t.slots {
			if e.s == nil {
				continue
			}
			for i := range e.s.numCount() {
				if n := e.s.routeNumber(i); t.hash(n, e.s.number) == e.h {
					if !yield(pairKey{n, e.s.number}, e.s) {
						return
					}
					break
				}
			}
		}
	}
}
