package memstore

import (
	"cmp"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// senderWindow is the window of Signals.SenderSessions24h.
const senderWindow = 24 * time.Hour

// senderCounts counts, per API key and verified sender, the sessions verified
// in the last 24 h (Signals.SenderSessions24h). It forgets by time only:
// a flood of other senders never pushes out a recent verification, and an
// entry leaves once it is older than the window, so memory follows the
// verifications of one day. An entry costs its time and session id in its
// sender's list and a slot in a queue in insertion order, which is time
// order up to the jitter between concurrent steps: expiry pops the queue's
// front while it is past the window, O(1) amortised, no scan. A queue slot
// holds the entry's time and its sender's hash in the table, 16 bytes and
// no pointer: expiry trims the sender of that hash by time, which is right
// for whichever sender it finds (two senders of one 63-bit hash, seeded
// per process, would only keep the second's old entries until the first
// leaves; its count stays exact).
//
// An entry is added where a verification is applied (live or replayed)
// and names its session, so adding one twice (a snapshot holds it and the
// log replays it) counts it once.
type senderCounts struct {
	mu    sync.Mutex
	t     senderTable     // each sender's entries, by time
	queue fifo[senderRef] // every entry's sender, in insertion order
}

type senderEntry struct {
	at int64 // unix ns
	id [16]byte
}

// senderList is a sender's entries in time order. Most senders verify once
// a day: their one entry is held in the map itself, with no allocation.
type senderList struct {
	one  [1]senderEntry // the only entry, when many is nil (no entry is zero)
	many *senderMany    // two or more entries
}

// senderMany holds two or more entries: a second entry costs one
// allocation, list first pointing into two. The times of its ends are kept
// beside list, so that counting reads no entry (all are in the window when
// both ends are) and an entry later than all appends without reading one.
type senderMany struct {
	list           []senderEntry
	oldest, newest int64 // list[0].at, list[len(list)-1].at
	two            [2]senderEntry
}

// setList makes list the entries, with its ends.
func (m *senderMany) setList(list []senderEntry) {
	m.list, m.oldest, m.newest = list, list[0].at, list[len(list)-1].at
}

// entries returns the list's entries; it shares l's memory.
func (l *senderList) entries() []senderEntry {
	switch {
	case l.many != nil:
		return l.many.list
	case l.one[0] != (senderEntry{}):
		return l.one[:]
	}
	return nil
}

// senderID is an API key and a verified sender.
type senderID struct{ key, sender string }

type senderRef struct {
	h  uint64 // the sender's hash in the table
	at int64
}

// add records that session id of API key key was verified for sender at:
// a verification replayed.
func (c *senderCounts) add(key, sender string, at time.Time, id [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insert(senderID{key, sender}, senderEntry{at: at.UnixNano(), id: id})
}

// countAndAdd is count then add, for a verification at now: under one
// lock, with one probe of the table for both (a live verification counts
// the sessions verified before it, then adds its own). hs is
// hashString(sender), which the verification has hashed already; ns is
// now in unix nanoseconds.
func (c *senderCounts) countAndAdd(key, sender string, hs uint64, ns int64, id [16]byte) int {
	c.mu.Lock()
	defer c.mu.Unlock() // a bug's panic, recovered by a handler, must not leave every later verification waiting
	// Expiry first: it may delete slots, moving the one getOrAdd returns.
	// Most verifications find the oldest entry in the window, checked
	// here without the call.
	if ref, ok := c.queue.front(); ok && ref.at < ns-int64(senderWindow) {
		c.expire(ns)
	}
	l, h := c.t.getOrAddHashed(senderID{key, sender}, hs)
	if l.many == nil && l.one[0] == (senderEntry{}) {
		// A sender with no entry in the window (most verify once a day):
		// countAt's 0 and placeIn's first entry, without their calls.
		l.one[0] = senderEntry{at: ns, id: id}
		c.queue.push(senderRef{h: h, at: ns})
		return 0
	}
	n := countAt(l, ns)
	if e := (senderEntry{at: ns, id: id}); placeIn(l, e) {
		c.queue.push(senderRef{h: h, at: e.at})
	}
	return n
}

// insert adds an entry in time order, once. The caller holds c.mu.
func (c *senderCounts) insert(k senderID, e senderEntry) {
	if h, ok := c.place(k, e); ok {
		c.queue.push(senderRef{h: h, at: e.at})
	}
}

// place adds an entry to its sender's list, in time order, and reports
// whether it was new, with the sender's hash; the caller queues it. The
// caller holds c.mu.
func (c *senderCounts) place(k senderID, e senderEntry) (uint64, bool) {
	l, h := c.t.getOrAdd(k)
	return h, placeIn(l, e)
}

// placeIn adds an entry to a sender's list l, in time order, and reports
// whether it was new. The caller holds c.mu.
func placeIn(l *senderList, e senderEntry) bool {
	switch {
	case l.many != nil && e.at > l.many.newest: // the usual case: the newest
		l.many.list = append(l.many.list, e)
		l.many.newest = e.at
	case l.many != nil:
		i, dup := insertAt(l.many.list, e)
		if dup {
			return false
		}
		l.many.setList(slices.Insert(l.many.list, i, e))
	case l.one[0] == (senderEntry{}):
		l.one[0] = e
	default:
		one := l.one
		i, dup := insertAt(one[:], e)
		if dup {
			return false
		}
		many := &senderMany{}
		many.setList(append(append(append(many.two[:0], one[:i]...), e), one[i:]...))
		*l = senderList{many: many}
	}
	return true
}

// insertAt returns where e goes in list, by time, or that list holds it.
func insertAt(list []senderEntry, e senderEntry) (int, bool) {
	i := len(list)
	for i > 0 && list[i-1].at >= e.at {
		if list[i-1].id == e.id {
			return 0, true
		}
		i--
	}
	if i > 0 && list[i-1].id == e.id {
		return 0, true
	}
	return i, false
}

// count returns how many sessions of API key key were verified for sender
// in the 24 h up to now. It first forgets what is older.
func (c *senderCounts) count(key, sender string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now.UnixNano())
	l := c.t.get(senderID{key, sender})
	if l == nil {
		return 0
	}
	return countAt(l, now.UnixNano())
}

// countAt returns how many entries of l are in the 24 h up to now (unix
// ns).
func countAt(l *senderList, now int64) int {
	from, to := now-int64(senderWindow), now
	if m := l.many; m != nil {
		if m.oldest >= from && m.newest <= to {
			return len(m.list) // the usual case, read beside the list
		}
		return inWindow(m.list, from, to)
	}
	// No entry, or one (held in l.one, zero for none): its time says
	// first, a zero entry being rare (a new sender).
	if e := &l.one[0]; e.at >= from && e.at <= to && *e != (senderEntry{}) {
		return 1
	}
	return 0
}

// inWindow returns how many entries of list, in time order, are in
// [from, to]. Almost always all are (expire has dropped the older ones, and
// none is later than the step counting): the ends say so in O(1); only a
// list that reaches past either end is searched.
func inWindow(list []senderEntry, from, to int64) int {
	if len(list) == 0 || list[0].at >= from && list[len(list)-1].at <= to {
		return len(list)
	}
	i, _ := slices.BinarySearchFunc(list, from, func(e senderEntry, t int64) int { return cmp.Compare(e.at, t) })
	j, _ := slices.BinarySearchFunc(list, to+1, func(e senderEntry, t int64) int { return cmp.Compare(e.at, t) })
	return max(j-i, 0)
}

// expire forgets the entries older than the window at now (unix ns),
// oldest first. The caller holds c.mu.
func (c *senderCounts) expire(now int64) {
	limit := now - int64(senderWindow)
	for {
		ref, ok := c.queue.front()
		if !ok || ref.at >= limit {
			break
		}
		c.queue.pop()
		i, ok := c.t.findHash(ref.h)
		if !ok {
			continue
		}
		l := &c.t.slots[i].l
		if l.many == nil {
			if l.one[0].at < limit {
				c.t.del(i)
			}
			continue
		}
		list := l.many.list
		j := 0
		for j < len(list) && list[j].at < limit {
			j++
		}
		switch {
		case j == len(list):
			c.t.del(i)
		case j == len(list)-1:
			*l = senderList{one: [1]senderEntry{list[j]}}
		case j > 0:
			l.many.setList(list[j:])
		}
	}
}

// sweep is expire for the sweeper, when nothing is verified.
func (c *senderCounts) sweep(now time.Time) {
	c.mu.Lock()
	c.expire(now.UnixNano())
	c.mu.Unlock()
}

// len returns how many entries are held, for tests.
func (c *senderCounts) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.t.all() {
		n += len(l.entries())
	}
	return n
}

// The sender counts' part of durability: their snapshot section (snapshot
// version 3: uvarint n, then n times API key, sender, uvarint k, k times
// varint at and 16-byte session id), its restore, and the seeding
// from the verified sessions of an older snapshot, which has no section.
// They change only with OpVerify, which the sessions replay.

// snapshot appends the entries of the window at now to e.
func (c *senderCounts) snapshot(e *enc, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now.UnixNano())
	e.uv(uint64(c.t.n))
	for k, l := range c.t.all() {
		list := l.entries()
		e.str(k.key)
		e.str(k.sender)
		e.uv(uint64(len(list)))
		for _, en := range list {
			e.varint(en.at)
			e.b = append(e.b, en.id[:]...)
		}
	}
}

// restore reads the section snapshot wrote, skipping what is past the
// window at now (a section that does not decode adds nothing). Each
// sender's entries come in time order and are appended to its list as they
// come, in a table sized for the section's senders; only the queue needs
// every entry in time order: it is filled from a sort of (time, sender hash)
// pairs, 16 bytes each, ties kept in snapshot order.
func (c *senderCounts) restore(d *dec, now time.Time) {
	type kv struct {
		k senderID
		e senderEntry
	}
	limit := now.Add(-senderWindow).UnixNano()
	n := d.uv()
	// Room for an entry per sender, as a day's senders mostly have (an
	// entry takes at least 20 bytes: no more than the section can hold).
	all := make([]kv, 0, min(n, uint64(len(d.b)/20)))
	senders := 0      // with an entry in the window
	var keys interner // a deployment has a few API keys: one string each
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := senderID{keys.getBytes(d.raw()), d.str()}
		cnt := d.uv()
		had := len(all)
		for j := uint64(0); j < cnt && d.err == nil; j++ {
			e := senderEntry{at: d.varint()}
			copy(e.id[:], d.fixed(len(e.id)))
			if d.err == nil && e.at >= limit {
				all = append(all, kv{k, e})
			}
		}
		if len(all) > had {
			senders++
		}
	}
	if d.err != nil {
		return
	}
	order := make([]timePos, 0, len(all))
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.reserve(c.t.n + senders)
	for _, x := range all {
		if h, ok := c.place(x.k, x.e); ok {
			order = append(order, timePos{x.e.at, h})
		}
	}
	for _, o := range sortByTime(order) {
		c.queue.push(senderRef{h: o.h, at: o.at})
	}
}

// timePos is an entry's time and its sender's hash, in snapshot order.
type timePos struct {
	at int64
	h  uint64
}

// sortByTime sorts ps, given in snapshot order, by time, ties kept in that
// order: a least-significant-digit radix sort on the time since the
// oldest, 16 bits a pass (a day in nanoseconds takes 47 bits: 3 passes),
// so a day's entries sort in a few linear passes where a comparison sort
// takes log n. It returns ps or a slice of the same length.
func sortByTime(ps []timePos) []timePos {
	if len(ps) < 2 {
		return ps
	}
	lo, hi := ps[0].at, ps[0].at
	for _, p := range ps {
		lo, hi = min(lo, p.at), max(hi, p.at)
	}
	span := uint64(hi - lo)
	tmp := make([]timePos, len(ps))
	var count [1 << 16]int
	for shift := uint(0); shift < 64 && span>>shift != 0; shift += 16 {
		clear(count[:])
		for _, p := range ps {
			count[uint64(p.at-lo)>>shift&0xffff]++
		}
		sum := 0
		for i, c := range count {
			count[i], sum = sum, sum+c
		}
		for _, p := range ps {
			d := uint64(p.at-lo) >> shift & 0xffff
			tmp[count[d]] = p
			count[d]++
		}
		ps, tmp = tmp, ps
	}
	return ps
}

// senderTable holds each sender's entries by API key and sender: a hash
// table of its own, as the shards' indexes are (index.go), rather than a
// Go map: a lookup hashes the two strings and probes one slot array (a Go
// map of a million senders walks a directory, a table and a group first),
// and the entries of a sender are changed in place, through the pointer
// get returns, with no second lookup to store them back. Linear probing,
// growing at 3/4 full, deleting by shifting back, and halving once under
// 1/8 full, so a flood's memory is given back as it expires. The caller
// holds senderCounts.mu.
type senderTable struct {
	slots []senderSlot
	n     int
	// The hash of the API key last hashed (a deployment has a few keys,
	// each a string shared by its sessions): keyHash compares it first.
	lastKey  string
	lastKeyH uint64
	// Where slots is and lastKeyH, published for prefetch, which reads
	// them without senderCounts.mu: they are written under it, by
	// setSlots and keyHash.
	at   atomic.Pointer[slotsAt] // nil: no slots
	keyH atomic.Uint64
}

type senderSlot struct {
	h uint64 // never 0; 0: the slot is empty
	k senderID
	l senderList
}

// hash is k's hash, seeded by hashSeed (senders are chosen by whoever
// sends; one seed for the process, so the queue's hashes stay good).
func (t *senderTable) hash(k senderID) uint64 { return t.hashWith(k.key, hashString(k.sender)) }

// hashWith is the hash of API key key and a sender of hash hs.
func (t *senderTable) hashWith(key string, hs uint64) uint64 { return senderHash(t.keyHash(key), hs) }

// senderHash is the hash of an API key of hash kh and a sender of hash hs.
func senderHash(kh, hs uint64) uint64 { return (kh*0x9e3779b97f4a7c15 ^ hs) | 1<<63 }

// keyHash is hashString(key), remembered for the key last hashed. It is
// inlined, the hash of another key (newKeyHash) not.
func (t *senderTable) keyHash(key string) uint64 {
	if key != t.lastKey || t.lastKeyH == 0 {
		return t.newKeyHash(key)
	}
	return t.lastKeyH
}

// newKeyHash makes key the key last hashed and returns its hash.
func (t *senderTable) newKeyHash(key string) uint64 {
	t.lastKey, t.lastKeyH = key, hashString(key)|1 // |1: 0 means none yet
	t.keyH.Store(t.lastKeyH)
	return t.lastKeyH
}

// setSlots makes slots the table's slot array, and publishes where it is.
func (t *senderTable) setSlots(slots []senderSlot) {
	t.slots = slots
	publishSlots(&t.at, slots)
}

// homeAddr returns the address of the slot where a probe for a sender of
// hash hs (hashString(sender)), under the API key last hashed, starts
// (the sender's own slot unless another sender's hash came there first),
// or 0 for no table: what ingest prefetches for a countAndAdd to come,
// the third of a verification's dependent misses, which it overlaps with
// the first two (prefetch.go). The key is the one last counted, as it is
// in a deployment of one API key; with another, only a useless line is
// loaded. It holds no lock: it reads only what setSlots and keyHash
// publish, and the address may be out of date by the time it is used. A
// slot takes two cache lines (TestSlotLines), both loaded.
func (t *senderTable) homeAddr(hs uint64) uintptr {
	return homeAddr[senderSlot](&t.at, senderHash(t.keyH.Load(), hs))
}

// findHash returns the first slot of hash h, or false.
func (t *senderTable) findHash(h uint64) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	mask := len(t.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		switch t.slots[i].h {
		case 0:
			return 0, false
		case h:
			return i, true
		}
	}
}

// find returns the slot of k, or false.
func (t *senderTable) find(k senderID) (int, bool) {
	if t.n == 0 {
		return 0, false
	}
	i := t.probe(t.hash(k), k)
	return i, t.slots[i].h != 0
}

// probe returns the slot of k, whose hash is h, or the empty slot where
// it would go.
func (t *senderTable) probe(h uint64, k senderID) int {
	slots := t.slots // loaded once: the compiler reloads a field each step
	mask := len(slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		s := &slots[i]
		if s.h == 0 || s.h == h && s.k == k {
			return i
		}
	}
}

// reserve makes room for n senders in all, without growing on the way.
func (t *senderTable) reserve(n int) {
	if size := sizeFor(n, len(t.slots)); size > len(t.slots) {
		t.resize(size)
	}
}

// get returns k's entries, or nil; the pointer is good until the table
// next changes.
func (t *senderTable) get(k senderID) *senderList {
	if i, ok := t.find(k); ok {
		return &t.slots[i].l
	}
	return nil
}

// getOrAdd returns k's entries, adding an empty list for a new sender,
// and k's hash.
func (t *senderTable) getOrAdd(k senderID) (*senderList, uint64) {
	return t.getOrAddHashed(k, hashString(k.sender))
}

// getOrAddHashed is getOrAdd for a sender of hash hs (hashString(k.sender)).
func (t *senderTable) getOrAddHashed(k senderID, hs uint64) (*senderList, uint64) {
	if (t.n+1)*4 > len(t.slots)*maxLoad {
		t.resize(max(8, 2*len(t.slots)))
	}
	h := senderHash(t.keyHash(k.key), hs) // t.hashWith(k.key, hs), with keyHash inlined
	s := &t.slots[t.probe(h, k)]
	if s.h == 0 { // an empty slot is all zero (del, resize): its list too
		s.h, s.k = h, k
		t.n++
	}
	return &s.l, h
}

// del empties slot i.
func (t *senderTable) del(i int) {
	mask := len(t.slots) - 1
	// Shift back the slots after i whose probe passed through i.
	for j := (i + 1) & mask; t.slots[j].h != 0; j = (j + 1) & mask {
		home := int(t.slots[j].h) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = senderSlot{} // whole: getOrAddHashed writes a new sender's hash and key alone (TestEmptySenderSlotsAreZero)
	t.n--
	switch {
	case t.n == 0:
		t.setSlots(nil)
	case len(t.slots) > 8 && t.n*8 < len(t.slots):
		t.resize(len(t.slots) / 2)
	}
}

// resize moves the senders to a table of size slots (a power of two).
func (t *senderTable) resize(size int) {
	old := t.slots
	t.setSlots(make([]senderSlot, size))
	touchPages(t.slots) // recovery's table is as large as the sender counts (restore)
	mask := size - 1
	for _, s := range old {
		if s.h != 0 {
			i := int(s.h) & mask
			for t.slots[i].h != 0 {
				i = (i + 1) & mask
			}
			t.slots[i] = s
		}
	}
}

// all yields every sender and its entries; the table must not change
// meanwhile.
func (t *senderTable) all() iter.Seq2[senderID, *senderList] {
	return func(yield func(senderID, *senderList) bool) {
		for i := range t.slots {
			if s := &t.slots[i]; s.h != 0 && !yield(s.k, &s.l) {
				return
			}
		}
	}
}
