package memstore

import (
	"encoding/binary"
	"runtime"
	"slices"

	"github.com/mogate/mogate/matcher"
	"sync"
	"sync/atomic"
	"time"
)

// The sessions' part of durability: their snapshot sections, their
// restore, and the replay of their records. The idempotency keys are
// derived from the sessions and come back with them.

// snapshotShards copies every shard's sessions, each under its shard's
// lock, and returns with each section its cut: the last LSN appended while
// the shard was copied. A section is its chunks, in order (sectionChunks).
func (m *Store) snapshotShards(lastLSN func() uint64) (cuts [numShards]uint64, sections [numShards][][]byte) {
	for i := range m.shards {
		sh := &m.shards[i]
		var c sectionChunks
		sh.mu.Lock()
		cuts[i] = lastLSN()
		n := sh.byID.len()
		c.start(n)
		c.e.uv(uint64(n))
		for s := range sh.byID.all() {
			c.next(n, s)
			c.e.compact(s)
			n--
		}
		sh.mu.Unlock()
		sections[i] = c.done()
	}
	return cuts, sections
}

// sectionChunks encodes a snapshot section into chunks that are never
// grown, each sized for the sessions left (sessionBytes each) up to
// chunkBytes: a section grown as one buffer copied itself at every growth,
// a few times its size in garbage, and was then copied into the payload
// (Snapshot writes the chunks as they are).
type sectionChunks struct {
	chunks [][]byte
	e      enc
}

const (
	chunkBytes   = 64 << 10
	sessionBytes = 192 // a session's encoding without its long extra fields, over its usual size
)

// start makes the first chunk, for n sessions and the section's count.
func (c *sectionChunks) start(n int) {
	c.chunks = make([][]byte, 0, 1+n*sessionBytes/chunkBytes)
	c.e.b = make([]byte, 0, min(binary.MaxVarintLen64+n*sessionBytes, chunkBytes))
}

// next makes room for s, one of the left sessions still to encode: a new
// chunk, sized for them, when the current one has less room than s is
// likely to take (sessionBytes and its long extra fields). A session that
// takes more than that grows the chunk, which is correct but copies it.
func (c *sectionChunks) next(left int, s *session) {
	need := sessionBytes
	if x := s.x; x != nil {
		need += len(x.callback) + len(x.redirect) + len(x.metadata) + len(x.idemKey) + len(x.reqHash) + len(x.verifiedNumber) +
			len(x.clientCountry) + len(x.provider) + len(x.labels.api) + len(x.labels.country) + len(x.labels.language)
		for _, r := range x.routes {
			need += 2 + len(r.Channel) + len(r.To)
		}
	}
	if cap(c.e.b)-len(c.e.b) >= need {
		return
	}
	c.chunks = append(c.chunks, c.e.b)
	c.e.b = make([]byte, 0, max(min(left*sessionBytes, chunkBytes), need))
}

// done returns the chunks.
func (c *sectionChunks) done() [][]byte {
	if len(c.e.b) > 0 {
		c.chunks = append(c.chunks, c.e.b)
	}
	return c.chunks
}

// restoreShards decodes the shard sections of a snapshot of the given
// version, skipping the sessions finished before the retention at now. A
// snapshot older than version 3 has no sender counts: its verified
// sessions of the last 24 h seed them.
func (m *Store) restoreShards(sections [numShards][]byte, version uint8, now time.Time) error {
	codec := uint8(1)
	if version >= 3 {
		codec = 2
	}
	// The verified sessions of a snapshot older than the sender counts
	// seed them, in time order once every shard is read (their expiry
	// queue is oldest first).
	type seed struct {
		key, sender string
		at          time.Time
		id          [16]byte
	}
	var seedMu sync.Mutex
	var seeds []seed
	// Shards are independent: decode them on every core.
	var wg sync.WaitGroup
	var next atomic.Int32
	var failed atomic.Bool
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var in interner // the worker's own
			var kept []*session
			for i := int(next.Add(1)) - 1; i < numShards; i = int(next.Add(1)) - 1 {
				sd := dec{b: sections[i]}
				n := sd.uv()
				if n <= uint64(len(sd.b)) { // each session takes many bytes
					sh := &m.shards[i]
					sh.mu.Lock()
					sh.byID.reserve(int(n))
					sh.byToken.reserve(int(n))
					sh.mu.Unlock()
				}
				kept = kept[:0]
				limit := now.Add(-m.opt.Retention).UnixNano()
				for j := uint64(0); j < n && sd.err == nil; j++ {
					s := sd.compact(&in, codec)
					if sd.err != nil {
						break
					}
					if int(s.id[0]) != i {
						sd.fail()
						break
					}
					if version < 3 && s.status == matcher.Verified {
						v := s.view()
						seedMu.Lock()
						seeds = append(seeds, seed{v.Key, v.VerifiedNumber, v.FinishedAt, s.id})
						seedMu.Unlock()
					}
					if s.status.Final() && s.finished <= limit {
						continue
					}
					kept = append(kept, s)
				}
				if sd.err != nil || len(sd.b) != 0 {
					failed.Store(true)
					continue
				}
				m.restoreShard(i, kept)
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		return errDecode
	}
	slices.SortFunc(seeds, func(a, b seed) int { return a.at.Compare(b.at) })
	for _, sd := range seeds {
		m.senders.add(sd.key, sd.sender, sd.at, sd.id)
	}
	return nil
}

// restoreShard puts back the sessions of shard i's section, its pair index
// sized first for those that head a pair there (the pending ones of a
// sender, whose first route is their own shard's): grown as they came, it
// made a table of each size on the way, pages touched for the first time
// that no collection frees while the snapshot loads (pauseGC). A session
// with routes on other numbers also heads pairs in other shards, which
// grow for those as before (workers restore sections concurrently: no
// count of them is known up front).
func (m *Store) restoreShard(i int, ss []*session) {
	pairs := 0
	for _, s := range ss {
		if s.status == matcher.Pending && !s.capture() {
			pairs++
		}
	}
	sh := &m.shards[i]
	sh.mu.Lock()
	sh.byPair.reserve(pairs)
	sh.mu.Unlock()
	for _, s := range ss {
		m.restore(s)
	}
}

// restore puts a session from a snapshot back: every session by id and page
// token, only pending ones in the match indexes of each of its route
// numbers (a superseded session shares its key with its successor), and
// the timer that is due for it.
func (m *Store) restore(s *session) {
	sh := &m.shards[s.id[0]]
	mask := bit(int(s.id[0]))
	if !s.status.Final() {
		mask = s.shardsOf()
	}
	m.lockMask(mask)
	m.insert(sh, s)
	m.settle(sh)
	m.unlockMask(mask)
	if s.x != nil && s.x.idemKey != "" {
		is := &m.idem[fnv32(s.key, s.x.idemKey)%numShards]
		is.mu.Lock()
		is.m[s.key+"\x00"+s.x.idemKey] = s.idString()
		is.mu.Unlock()
	}
}

// settle moves the events that recovery made on the locked shard sh into
// the event table: read back, they are durable.
func (m *Store) settle(sh *shard) {
	m.events.addSessions(sh.fresh, nil) // clears the entries
	sh.fresh = sh.fresh[:0]
}

// replaySession applies a session's record read back from the log: on its
// shard, with the idempotency key of a created session.
func (m *Store) replaySession(r Record) {
	idx, ok := shardOfID(r.ID)
	if !ok {
		return
	}
	sh := &m.shards[idx]
	if r.Op != OpCreate {
		m.lockSession(r.ID, func(sh *shard, s *session) {
			m.applyTo(sh, s, r)
			m.settle(sh)
		})
		return
	}
	if r.Session == nil {
		return
	}
	if r.sess == nil {
		s, ok := fromView(r.Session)
		if !ok {
			return
		}
		r.sess = s
	}
	if s := r.Session; s.IdemKey != "" {
		is := &m.idem[fnv32(s.Key, s.IdemKey)%numShards]
		is.mu.Lock()
		is.m[s.Key+"\x00"+s.IdemKey] = s.ID
		is.mu.Unlock()
	}
	mask := bit(idx)
	if int(r.sess.id[0]) == idx && !r.sess.status.Final() {
		mask |= r.sess.shardsOf()
	}
	m.lockMask(mask)
	m.apply(sh, r)
	m.settle(sh)
	m.unlockMask(mask)
}
