package memstore

import (
	"cmp"
	"slices"
	"sync"
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
// front while it is past the window, O(1) amortised, no scan.
//
// An entry is added where a verification is applied (live or replayed)
// and names its session, so adding one twice (a snapshot holds it and the
// log replays it) counts it once.
type senderCounts struct {
	mu    sync.Mutex
	m     map[senderID]senderList // entries by time
	queue fifo[senderRef]         // every entry's list, in insertion order
	peak  int                     // the most senders m held since it was last rebuilt
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
// allocation, list first pointing into two.
type senderMany struct {
	list []senderEntry
	two  [2]senderEntry
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
	k  senderID
	at int64
}

// add records that session id of API key key was verified for sender at.
func (c *senderCounts) add(key, sender string, at time.Time, id [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insert(senderID{key, sender}, senderEntry{at: at.UnixNano(), id: id})
}

// insert adds an entry in time order, once. The caller holds c.mu.
func (c *senderCounts) insert(k senderID, e senderEntry) {
	if c.m == nil {
		c.m = map[senderID]senderList{}
	}
	l := c.m[k]
	switch {
	case l.many != nil:
		i, dup := insertAt(l.many.list, e)
		if dup {
			return
		}
		l.many.list = slices.Insert(l.many.list, i, e)
	case l.one[0] == (senderEntry{}):
		c.m[k] = senderList{one: [1]senderEntry{e}}
	default:
		one := l.one
		i, dup := insertAt(one[:], e)
		if dup {
			return
		}
		many := &senderMany{}
		many.list = append(append(append(many.two[:0], one[:i]...), e), one[i:]...)
		c.m[k] = senderList{many: many}
	}
	c.queue.push(senderRef{k: k, at: e.at})
	c.peak = max(c.peak, len(c.m))
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
	c.expire(now)
	l := c.m[senderID{key, sender}]
	return inWindow(l.entries(), now.Add(-senderWindow).UnixNano(), now.UnixNano())
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

// expire forgets the entries older than the window at now, oldest first.
// The caller holds c.mu.
func (c *senderCounts) expire(now time.Time) {
	limit := now.Add(-senderWindow).UnixNano()
	for {
		ref, ok := c.queue.front()
		if !ok || ref.at >= limit {
			break
		}
		c.queue.pop()
		k := ref.k
		l := c.m[k]
		if l.many == nil {
			if l.one[0].at < limit {
				delete(c.m, k)
			}
			continue
		}
		list := l.many.list
		i := 0
		for i < len(list) && list[i].at < limit {
			i++
		}
		switch {
		case i == len(list):
			delete(c.m, k)
		case i == len(list)-1:
			c.m[k] = senderList{one: [1]senderEntry{list[i]}}
		case i > 0:
			l.many.list = list[i:]
		}
	}
	if c.peak >= 1<<14 && len(c.m) < c.peak/4 {
		// Go maps do not give memory back: copy a map that a flood left
		// mostly empty, paid for by the entries that expired since.
		m := make(map[senderID]senderList, len(c.m))
		for k, v := range c.m {
			m[k] = v
		}
		c.m, c.peak = m, len(m)
	}
}

// sweep is expire for the sweeper, when nothing is verified.
func (c *senderCounts) sweep(now time.Time) {
	c.mu.Lock()
	c.expire(now)
	c.mu.Unlock()
}

// len returns how many entries are held, for tests.
func (c *senderCounts) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.m {
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
	c.expire(now)
	e.uv(uint64(len(c.m)))
	for k, l := range c.m {
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
// window at now; entries enter the queue in time order.
func (c *senderCounts) restore(d *dec, now time.Time) {
	type kv struct {
		k senderID
		e senderEntry
		i int // position in the snapshot: ties keep it
	}
	var all []kv
	limit := now.Add(-senderWindow).UnixNano()
	n := d.uv()
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := senderID{d.str(), d.str()}
		cnt := d.uv()
		for j := uint64(0); j < cnt && d.err == nil; j++ {
			e := senderEntry{at: d.varint()}
			copy(e.id[:], d.fixed(len(e.id)))
			if d.err == nil && e.at >= limit {
				all = append(all, kv{k, e, len(all)})
			}
		}
	}
	if d.err != nil {
		return
	}
	// A stable sort by time, without SortStableFunc's merging (n log² n:
	// most of the restore of a day's counts).
	slices.SortFunc(all, func(a, b kv) int { return cmp.Or(cmp.Compare(a.e.at, b.e.at), cmp.Compare(a.i, b.i)) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range all {
		c.insert(x.k, x.e)
	}
}
