package memstore

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/matcher"
)

// seenKey names a processed provider message or a spent request nonce in
// the dedupe table: the first 16 bytes of SHA-256 over provider, a zero
// byte and message id. The hash has no secret seed, so it is the same in
// every process and snapshots can store it; 128 bits leave an accidental
// collision to chance (about n²/2¹²⁹ for n ids) and a crafted one to 2⁶⁴
// work.
type seenKey [16]byte

// seenKeyOf is the key of a provider message id (or nonceMessageID).
func seenKeyOf(provider, id string) seenKey {
	var buf [192]byte
	b := append(append(append(buf[:0], provider...), 0), id...)
	return seenKeyRaw(b)
}

// seenKeyRaw is the key of provider + "\x00" + id, given whole.
func seenKeyRaw(b []byte) seenKey {
	sum := sha256.Sum256(b)
	return seenKey(sum[:16])
}

// dedupe remembers processed provider messages and spent nonces for the
// retention window, by time only: however many arrive meanwhile, none is
// forgotten before the window has passed. It also makes concurrent
// deliveries of one message wait for the first.
//
// Each id costs a map entry (key and a packed word: when and outcome kind) and a slot in a FIFO of keys in insertion order. Insertion order is
// time order (up to the jitter between concurrent releases), so expiry pops
// the FIFO's front while it is past the window: O(1) amortised, no scan.
// The session id of an outcome that has one sits in a second map.
type dedupe struct {
	mu       sync.Mutex
	done     map[seenKey]uint64
	sids     map[seenKey]string
	order    fifo[seenKey]
	size     atomic.Int64 // len(done), read without the lock
	peak     int          // the most entries done held since it was last rebuilt
	inflight map[seenKey]*flight
	ttlMS    int64
	lsn      func() uint64 // the journal's last LSN (0 in memory)
}

// flight is a message being processed. Its dedupe record will have an LSN
// above start, so a snapshot taken meanwhile replays from start on.
type flight struct {
	done  chan struct{}
	start uint64
}

// The packed word of a processed id: unix milliseconds << 8 | flags. Of
// the outcome only the kind and session id are kept, as in the log.
const (
	seenKind      = 0x07 // OutcomeKind
	seenHasSID    = 0x08 // the session id is in sids
	seenTimeShift = 8
)

func packSeen(o matcher.Outcome, atMS int64) uint64 {
	v := uint64(atMS)<<seenTimeShift | uint64(o.Kind)&seenKind
	if o.SessionID != "" {
		v |= seenHasSID
	}
	return v
}

func seenAt(v uint64) int64 { return int64(v) >> seenTimeShift }

func (d *dedupe) init(ttl time.Duration) {
	d.done = map[seenKey]uint64{}
	d.sids = map[seenKey]string{}
	d.inflight = map[seenKey]*flight{}
	d.ttlMS = ttl.Milliseconds()
	d.lsn = func() uint64 { return 0 }
}

// cut returns the LSN up to which every processed message is in done.
// The caller holds d.mu.
func (d *dedupe) cut(last uint64) uint64 {
	for _, f := range d.inflight {
		last = min(last, f.start)
	}
	return last
}

// outcome is the remembered outcome of k, packed as v. The caller holds d.mu.
func (d *dedupe) outcome(k seenKey, v uint64) matcher.Outcome {
	o := matcher.Outcome{Kind: matcher.OutcomeKind(v & seenKind)}
	if v&seenHasSID != 0 {
		o.SessionID = d.sids[k]
	}
	return o
}

// claim returns (outcome, false, nil) for a processed message, or (_, true,
// ch) when the caller must process it and then call release. It first
// forgets the ids past the retention at now.
func (d *dedupe) claim(k seenKey, now time.Time) (matcher.Outcome, bool, chan struct{}) {
	for {
		d.mu.Lock()
		d.expire(now)
		if v, ok := d.done[k]; ok {
			o := d.outcome(k, v)
			d.mu.Unlock()
			o.Duplicate = true
			return o, false, nil
		}
		if f, ok := d.inflight[k]; ok {
			d.mu.Unlock()
			<-f.done
			continue
		}
		ch := make(chan struct{})
		d.inflight[k] = &flight{done: ch, start: d.lsn()}
		d.mu.Unlock()
		return matcher.Outcome{}, true, ch
	}
}

func (d *dedupe) release(k seenKey, o matcher.Outcome, ok bool, ch chan struct{}, at time.Time) {
	d.mu.Lock()
	delete(d.inflight, k)
	if ok {
		d.add(k, o, at.UnixMilli())
	}
	d.mu.Unlock()
	close(ch)
}

// add remembers k from atMS on; an id already remembered keeps its first
// outcome. The caller holds d.mu.
func (d *dedupe) add(k seenKey, o matcher.Outcome, atMS int64) {
	if _, ok := d.done[k]; ok {
		return
	}
	d.done[k] = packSeen(o, atMS)
	if o.SessionID != "" {
		d.sids[k] = o.SessionID
	}
	d.order.push(k)
	d.size.Add(1)
	d.peak = max(d.peak, len(d.done))
}

// remember is add for recovery: it locks, and skips what is already past
// the retention at now.
func (d *dedupe) remember(k seenKey, o matcher.Outcome, at, now time.Time) {
	if now.Sub(at) >= time.Duration(d.ttlMS)*time.Millisecond {
		return
	}
	d.mu.Lock()
	d.add(k, o, at.UnixMilli())
	d.mu.Unlock()
}

// expire forgets the ids remembered for the retention or longer at now,
// oldest first. The caller holds d.mu.
func (d *dedupe) expire(now time.Time) {
	limit := now.UnixMilli() - d.ttlMS
	for {
		k, ok := d.order.front()
		if !ok {
			break
		}
		if v, ok := d.done[k]; ok {
			if seenAt(v) > limit {
				break
			}
			delete(d.done, k)
			if v&seenHasSID != 0 {
				delete(d.sids, k)
			}
			d.size.Add(-1)
		}
		d.order.pop()
	}
	d.shrink()
}

// shrinkBelow is the peak under which the maps are never copied (see
// shrink): Go maps do not give memory back by themselves.
const shrinkBelow = 1 << 14

// shrink copies the maps once they hold under a quarter of their peak, so
// a flood's memory is returned after it expires. The copy costs the
// entries left, paid for by the three times as many expired since the
// peak. The caller holds d.mu.
func (d *dedupe) shrink() {
	n := len(d.done)
	if d.peak < shrinkBelow || n >= d.peak/4 {
		return
	}
	done := make(map[seenKey]uint64, n)
	for k, v := range d.done {
		done[k] = v
	}
	sids := make(map[seenKey]string, len(d.sids))
	for k, v := range d.sids {
		sids[k] = v
	}
	d.done, d.sids, d.peak = done, sids, n
}

// sweep is expire for the sweeper, when no message arrives.
func (d *dedupe) sweep(now time.Time) {
	d.mu.Lock()
	d.expire(now)
	d.mu.Unlock()
}

// each calls fn for every remembered id, oldest first. The caller holds
// d.mu.
func (d *dedupe) each(fn func(k seenKey, o matcher.Outcome, atMS int64)) {
	d.order.each(func(k seenKey) {
		if v, ok := d.done[k]; ok {
			fn(k, d.outcome(k, v), seenAt(v))
		}
	})
}

// Remembered returns how many processed provider message ids and spent
// request nonces the matcher remembers: those of the retention window. It
// is O(1).
func (m *Store) Remembered() int { return int(m.dedupe.size.Load()) }

// fifoChunk is the number of items per FIFO chunk (64 KiB of keys).
const fifoChunk = 4096

// fifo is a queue in fixed-size chunks: it grows and shrinks a chunk at a
// time, with no copy of its contents and one spare chunk kept for reuse.
type fifo[T any] struct {
	chunks     []*[fifoChunk]T
	head, tail int // first used slot of chunks[0]; slots used in the last chunk
	spare      *[fifoChunk]T
}

func (q *fifo[T]) push(k T) {
	if len(q.chunks) == 0 || q.tail == fifoChunk {
		c := q.spare
		if c == nil {
			c = new([fifoChunk]T)
		}
		q.spare = nil
		q.chunks = append(q.chunks, c)
		q.tail = 0
	}
	q.chunks[len(q.chunks)-1][q.tail] = k
	q.tail++
}

func (q *fifo[T]) front() (T, bool) {
	if len(q.chunks) == 0 {
		var zero T
		return zero, false
	}
	return q.chunks[0][q.head], true
}

// pop drops the front item; the FIFO must not be empty.
func (q *fifo[T]) pop() {
	var zero T
	q.chunks[0][q.head] = zero // no reference kept
	q.head++
	switch {
	case len(q.chunks) == 1 && q.head == q.tail:
		q.spare = q.chunks[0]
		q.chunks[0] = nil
		q.chunks = q.chunks[:0]
		q.head, q.tail = 0, 0
	case q.head == fifoChunk:
		q.spare = q.chunks[0]
		q.chunks[0] = nil
		q.chunks = q.chunks[1:]
		q.head = 0
	}
}

func (q *fifo[T]) each(fn func(T)) {
	last := len(q.chunks) - 1
	for i, c := range q.chunks {
		from, to := 0, fifoChunk
		if i == 0 {
			from = q.head
		}
		if i == last {
			to = q.tail
		}
		for _, k := range c[from:to] {
			fn(k)
		}
	}
}

// The processed messages' part of durability: their snapshot section
// (version 2: uvarint n, then n times 16-byte key, outcome kind u8,
// session id, at; oldest first), its restore, and the replay of OpProcessed.

// snapshot copies the processed messages and returns them with the global
// cut: last, or just before the first message still in flight (its record
// is not in done yet, so it must be replayed).
func (d *dedupe) snapshot(last uint64) (global uint64, section []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	global = d.cut(last)
	// The entries go after room for their count, which is put right
	// before them once known: the section is the one buffer, sized for
	// entries with a session id (key, kind, id, time: 58 bytes), where the
	// entries were copied after their count (and grew, sized for 26
	// bytes each).
	const room = binary.MaxVarintLen64
	entries := enc{b: make([]byte, room, room+58*int(d.size.Load()))}
	count := 0
	d.each(func(k seenKey, o matcher.Outcome, atMS int64) {
		entries.b = append(entries.b, k[:]...)
		entries.u8(uint8(o.Kind))
		entries.str(o.SessionID)
		entries.time(time.UnixMilli(atMS))
		count++
	})
	n := binary.PutUvarint(entries.b[:room], uint64(count))
	start := room - n
	copy(entries.b[start:room], entries.b[:n])
	return global, entries.b[start:]
}

// seenEntry is a processed id read from a snapshot.
type seenEntry struct {
	key seenKey
	o   matcher.Outcome
	at  time.Time
}

// restore reads the section snapshot wrote, skipping what is past the
// retention at now. Version 1 keyed by the string provider, zero byte,
// message id, in any order: those are hashed and sorted by time.
func (d *dedupe) restore(dc *dec, version uint8, now time.Time) {
	if version >= 2 {
		start := *dc
		if d.restoreFast(dc, now) {
			return
		}
		*dc = start // a key twice: read it again the careful way
	}
	n := dc.uv()
	var v1 []seenEntry
	for i := uint64(0); i < n && dc.err == nil; i++ {
		var e seenEntry
		if version == 1 {
			e.key = seenKeyRaw(dc.raw())
		} else {
			copy(e.key[:], dc.fixed(len(e.key)))
		}
		e.o = matcher.Outcome{Kind: matcher.OutcomeKind(dc.u8())}
		e.o.SessionID = dc.str()
		e.at = dc.time()
		switch {
		case e.o.Kind > matcher.NonceSpent:
			dc.fail()
		case dc.err != nil:
		case version == 1:
			v1 = append(v1, e)
		default:
			d.remember(e.key, e.o, e.at, now)
		}
	}
	slices.SortStableFunc(v1, func(a, b seenEntry) int { return a.at.Compare(b.at) })
	for _, e := range v1 {
		d.remember(e.key, e.o, e.at, now)
	}
}

// restoreFast is restore of a version 2 section into an empty table, as
// recovery has (600k processed ids for a 1M-session day). It reads the
// section twice: first to size the maps and the session ids (growing the
// maps rehashed every entry a few times), then to fill them under one lock,
// with no lookup before each insertion and the session ids in one string
// (one allocation, not one per id; it is freed once every id restored with
// it has expired, within the retention). A section holds each key once: on
// one seen twice it returns false with the table emptied, for restore to
// read again keeping the first, as add does. Otherwise it reports that it
// read the section (dc.err says whether it was well formed).
func (d *dedupe) restoreFast(dc *dec, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.done) != 0 {
		return false
	}
	// remember's test, now.Sub(at) >= ttl, in unix nanoseconds (the zero
	// time is written as 0, which is past it too).
	limit := now.UnixNano() - d.ttlMS*int64(time.Millisecond)
	again := *dc // the second reading; dc is left after the section
	kept, withSID, idBytes := scanSection(dc, limit)
	if dc.err != nil {
		return true
	}
	n := again.uv()
	d.done = make(map[seenKey]uint64, kept)
	d.sids = make(map[seenKey]string, withSID)
	count := 0
	var ids strings.Builder
	ids.Grow(idBytes) // never grows again: the strings taken from it stay put
	for range n {
		var k seenKey
		copy(k[:], again.fixed(len(k)))
		kind := again.u8()
		sid := again.raw()
		atNS := again.varint()
		if atNS <= limit {
			continue
		}
		v := uint64(time.Unix(0, atNS).UnixMilli())<<seenTimeShift | uint64(kind)&seenKind
		if len(sid) > 0 {
			v |= seenHasSID
			from := ids.Len()
			ids.Write(sid)
			d.sids[k] = ids.String()[from:]
		}
		d.done[k] = v
		if count++; len(d.done) != count {
			d.clearLocked()
			return false
		}
		d.order.push(k)
	}
	d.size.Store(int64(len(d.done)))
	d.peak = max(d.peak, len(d.done))
	return true
}

// scanSection reads a version 2 section, checking it, and counts the
// entries within the retention (those after limit), how many of them have
// a session id, and the session ids' bytes.
func scanSection(dc *dec, limit int64) (kept, withSID, idBytes int) {
	n := dc.uv()
	for i := uint64(0); i < n && dc.err == nil; i++ {
		dc.fixed(len(seenKey{}))
		kind := matcher.OutcomeKind(dc.u8())
		sid := dc.raw()
		atNS := dc.varint()
		switch {
		case kind > matcher.NonceSpent:
			dc.fail()
		case dc.err != nil, atNS <= limit:
		default:
			kept++
			if len(sid) > 0 {
				withSID++
				idBytes += len(sid)
			}
		}
	}
	return kept, withSID, idBytes
}

// clearLocked empties the table. The caller holds d.mu.
func (d *dedupe) clearLocked() {
	clear(d.done)
	clear(d.sids)
	d.order = fifo[seenKey]{}
	d.size.Store(0)
}

// replay applies an OpProcessed record read back from the log.
func (d *dedupe) replay(r Record, now time.Time) {
	d.remember(seenKeyOf(r.Provider, r.MessageID), r.Outcome, r.At, now)
}
