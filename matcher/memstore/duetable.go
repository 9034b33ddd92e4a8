package memstore

import "iter"

// dueSessions is the event table's set of sessions whose final-status
// event is undelivered (events.sessions). The caller holds events.mu.
//
// It is a log, not a hash table: an event enters at its end, in chunks
// that never move, so the step that verifies a session writes one entry
// next to the last one — no hashing, no probe into a table of millions of
// entries (a cache miss each), no rehash as it grows. A hash table by id
// would serve only the lookups by id, which come later and from fewer
// places: claiming leases an event through the entry it found while
// scanning the log, and puts it in leased, by id; acknowledging or
// deferring it finds it there. A lookup of an id that was never leased
// (a delivery replayed during recovery, say) indexes the log from where
// its index stops: each entry is indexed at most once, and only if such a
// lookup comes.
//
// A delivered event leaves a hole; once the holes outnumber the events
// (and 1024), the log is compacted in place, in order, so its memory
// follows the undelivered events and the holes cost O(1) each. The leased
// and index maps give their memory back only once empty (a Go map never
// shrinks): they stay the size of their largest burst until then.
//
// A session's event is added once: where its status becomes final (live,
// or replayed past the snapshot's cut) or where the snapshot that holds it
// finished brings it back. Nothing checks it (the check was a hash lookup
// per verification): a second add would be a second event, claimable
// until a restart, since only the first delivery removes one.
type dueSessions struct {
	chunks []*[dueChunk]dueSession
	n      int // entries in the log, holes included
	live   int // entries that are not holes
	leased map[[16]byte]*dueSession
	// index holds the entries of log positions [0, indexed) that are not
	// holes, by id; nil until a lookup misses leased.
	index   map[[16]byte]*dueSession
	indexed int
}

// dueChunk is the number of entries per chunk of the log.
const dueChunk = 1024

func (d *dueSessions) at(i int) *dueSession { return &d.chunks[i/dueChunk][i%dueChunk] }

func (d *dueSessions) len() int { return d.live }

// add puts e at the end of the log.
func (d *dueSessions) add(e dueSession) {
	if d.n == len(d.chunks)*dueChunk {
		d.chunks = append(d.chunks, new([dueChunk]dueSession))
	}
	*d.at(d.n) = e
	d.n++
	d.live++
}

// lease records that the entry e, found in the log, is leased: later
// lookups of its id find it without an index.
func (d *dueSessions) lease(e *dueSession) {
	if d.leased == nil {
		d.leased = map[[16]byte]*dueSession{}
	}
	d.leased[e.s.id] = e
}

// get returns the entry of the session of raw id id, or nil. The pointer
// is good until the table is next compacted (del or deleteFunc; add
// never moves an entry).
func (d *dueSessions) get(id [16]byte) *dueSession {
	if e := d.leased[id]; e != nil {
		return e
	}
	if d.live == 0 {
		return nil
	}
	if d.index == nil {
		d.index = map[[16]byte]*dueSession{}
	}
	for ; d.indexed < d.n; d.indexed++ {
		if e := d.at(d.indexed); e.s != nil {
			d.index[e.s.id] = e
		}
	}
	return d.index[id]
}

// del removes the entry of the session of raw id id, if any.
func (d *dueSessions) del(id [16]byte) {
	if e := d.get(id); e != nil {
		d.remove(e)
		d.maybeCompact()
	}
}

// deleteFunc removes the entries for which drop returns true.
func (d *dueSessions) deleteFunc(drop func(*dueSession) bool) {
	for i := range d.n {
		if e := d.at(i); e.s != nil && drop(e) {
			d.remove(e)
		}
	}
	d.maybeCompact()
}

// remove makes the entry e a hole.
func (d *dueSessions) remove(e *dueSession) {
	id := e.s.id
	*e = dueSession{}
	d.live--
	delete(d.leased, id)
	if d.index != nil {
		delete(d.index, id)
		if len(d.index) == 0 {
			// Every entry it indexed is gone: its memory goes back, and a
			// next miss goes on from where it stopped (everything before
			// is a hole), not from the log's start.
			d.index = nil
		}
	}
}

// maybeCompact compacts the log once its holes outnumber its entries and
// fill a chunk: each compaction's copying is paid for by as many holes.
func (d *dueSessions) maybeCompact() {
	if holes := d.n - d.live; holes >= dueChunk && holes >= d.live {
		d.compact()
	}
}

// compact moves the entries over the holes, in order, updates leased and
// index to their new places and gives back the chunks left empty.
func (d *dueSessions) compact() {
	w, indexed := 0, 0
	for r := range d.n {
		if r == d.indexed {
			indexed = w
		}
		e := d.at(r)
		if e.s == nil {
			continue
		}
		if r != w {
			to := d.at(w)
			*to, *e = *e, dueSession{}
			if _, ok := d.leased[to.s.id]; ok {
				d.leased[to.s.id] = to
			}
			if r < d.indexed && d.index != nil {
				d.index[to.s.id] = to
			}
		}
		w++
	}
	if d.indexed == d.n {
		indexed = w
	}
	d.n, d.indexed = w, indexed
	keep := (w + dueChunk - 1) / dueChunk
	clear(d.chunks[keep:])
	d.chunks = d.chunks[:keep]
	if len(d.leased) == 0 {
		d.leased = nil // a Go map keeps its memory: drop one a burst of claims grew
	}
	if d.live == 0 {
		d.chunks = nil
	}
}

// all yields every entry; the table must not change meanwhile, but for
// the fields of the entries yielded.
func (d *dueSessions) all() iter.Seq[*dueSession] {
	return func(yield func(*dueSession) bool) {
		for i := range d.n {
			if e := d.at(i); e.s != nil && !yield(e) {
				return
			}
		}
	}
}
