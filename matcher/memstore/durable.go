package memstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// On-disk layout under a matcher's data directory:
//
//	snapshot        the latest snapshot (wal snapshot framing, payload below)
//	wal/            the log segments, "<first LSN>.wal", and any ".broken" cuts
//
// Snapshot payload, version 3: u8 version | u64 cut per shard (64, uvarint)
// | uvarint global cut | per shard: uvarint byte length, then uvarint n and
// n sessions (the session format of codec.go, record version 2) | uvarint
// n, n processed messages and spent nonces, oldest first (16-byte key,
// outcome kind u8, session id, at) | uvarint n, n stored parts (first
// seen, then the OpPart fields) | uvarint n, n message.unmatched events |
// the sender counts (senders.go). Shard sections are length-prefixed so
// that recovery decodes them in parallel. Version 2 (still read) has
// sessions of record version 1 and no sender counts: its verified sessions
// seed them. Version 1 (still read) differs from 2 in the processed
// messages: their key is the string provider, zero byte, message id, in
// any order.
//
// Each shard's cut is the last LSN appended while the shard was being copied
// under its lock: its records with a higher LSN are replayed, the others
// are already in the snapshot. The global cut does the same for processed
// messages and parts, whose records are idempotent.

const snapshotName = "snapshot"

// snapshotVersion is the version of the snapshot payload written.
const snapshotVersion = 3

// DurableOptions configure Open.
type DurableOptions struct {
	WAL wal.Options
	// SnapshotEvery starts a snapshot after this many records; 1<<20 when 0.
	SnapshotEvery uint64
	// SnapshotInterval starts a snapshot after this long if anything was
	// written since the last one; 5m when 0.
	SnapshotInterval time.Duration
}

// durable is the WAL side of a matcher opened with Open.
type durable struct {
	dir     string
	fs      wal.FS
	log     *wal.WAL
	opt     DurableOptions
	mu      sync.Mutex // one snapshot at a time
	lastLSN uint64     // LSN covered by the last snapshot (the minimum cut)
	lastAt  time.Time
}

type walJournal struct{ log *wal.WAL }

var encPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledEnc is the largest buffer encPool keeps: an append of thousands
// of records (a sweep's expiries) grows its buffer past it, and the pool
// would hold that much for every later append of a record or two.
const maxPooledEnc = 64 << 10

// Append implements Journal: records are encoded into one pooled buffer
// and handed to the WAL's pending batch, which copies them. Any number of
// records goes in one batch; up to four (every hot path) are encoded
// without an allocation, more with two (their bounds and slices: each
// was encoded into a buffer of its own, grown from nothing).
func (j walJournal) Append(recs ...Record) Commit {
	const inline = 4
	var boundsInline [inline]int
	var partsInline [inline][]byte
	bounds, parts := boundsInline[:0], partsInline[:0]
	if len(recs) > inline {
		bounds, parts = make([]int, 0, len(recs)), make([][]byte, 0, len(recs))
	}
	bp := encPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for i := range recs {
		buf = encodeRecord(buf, &recs[i])
		bounds = append(bounds, len(buf))
	}
	start := 0
	for _, end := range bounds {
		parts = append(parts, buf[start:end])
		start = end
	}
	b := j.log.Append(parts...)
	if cap(buf) <= maxPooledEnc {
		*bp = buf
		encPool.Put(bp)
	}
	return b
}

// Open opens (or creates) the durable matcher in dir: it loads the latest
// snapshot, replays the log after it, and journals every change to the log.
// Corruption that would lose acknowledged records is an error naming the
// file and offset; a torn tail is cut and kept aside (see package wal).
func Open(dir string, o Options, do DurableOptions) (*Store, error) {
	if do.WAL.FS == nil {
		do.WAL.FS = wal.OS{}
	}
	if do.SnapshotEvery == 0 {
		do.SnapshotEvery = 1 << 20
	}
	if do.SnapshotInterval == 0 {
		do.SnapshotInterval = 5 * time.Minute
	}
	if err := do.WAL.FS.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("matcher: %w", err)
	}
	o.Journal = nil
	m := New(o)
	// The collector is paused while the snapshot loads and the log's
	// records it covers are checked (pauseGC), and resumes before the
	// first record replayed, whose garbage it collects, or as Open
	// returns: resumed right after the load, it marked the new heap while
	// the covered records were read, the log's buffers paying assists.
	resume := sync.OnceFunc(pauseGC())
	defer resume()
	var cuts [numShards]uint64
	var global uint64
	// The payload is mapped, not read (wal.LoadSnapshot): what the load
	// keeps of it is copied out, and it is released once loaded.
	payload, release, err := wal.LoadSnapshot(do.WAL.FS, dir, snapshotName)
	switch {
	case errors.Is(err, wal.ErrNoSnapshot):
	case err != nil:
		return nil, err
	default:
		cuts, global, err = m.loadSnapshot(payload)
		release()
		if err != nil {
			return nil, fmt.Errorf("matcher: snapshot %s: %w", filepath.Join(dir, snapshotName), err)
		}
	}
	minCut := global
	for _, c := range cuts {
		minCut = min(minCut, c)
	}
	var first uint64
	log, err := wal.Open(filepath.Join(dir, "wal"), do.WAL, func(lsn uint64, p []byte) error {
		if first == 0 {
			first = lsn
		}
		if lsn <= minCut {
			// Every cut covers it: the snapshot holds its change. Its
			// format version is still checked; it is not decoded (the
			// active segment may hold a whole segment of such records).
			if len(p) == 0 || !knownRecordVersion(p[0]) {
				return errDecode
			}
			return nil
		}
		resume()
		r, err := decodeRecord(p)
		if err != nil {
			return err
		}
		switch {
		case !r.ofSession():
			if lsn <= global {
				return nil
			}
		default:
			idx, ok := shardOfID(r.ID)
			if !ok {
				return errDecode
			}
			if lsn <= cuts[idx] {
				return nil
			}
		}
		m.Replay(r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if first > minCut+1 {
		log.Close()
		return nil, fmt.Errorf("matcher: %w: the snapshot covers records up to LSN %d but the log starts at %d; segments are missing", wal.ErrCorrupt, minCut, first)
	}
	m.opt.Journal = walJournal{log}
	m.wal = &walJournal{log}
	m.dedupe.lsn = log.LastLSN
	maxAge := o.EventMaxAge
	if maxAge == 0 {
		maxAge = 24 * time.Hour
	}
	m.events.dropSessionsBefore(o.nowOrDefault().Add(-maxAge))
	m.durable = &durable{dir: dir, fs: do.WAL.FS, log: log, opt: do, lastLSN: log.LastLSN(), lastAt: o.nowOrDefault()}
	return m, nil
}

func (o Options) nowOrDefault() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Snapshot writes a snapshot of the current state and releases the log
// segments it covers. It runs while the matcher serves: each shard is
// locked only while it is copied.
func (m *Store) Snapshot() error {
	d := m.durable
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := m.opt.Now()
	parts, cuts, global := m.snapshotParts(d.log.LastLSN, now)

	// Everything copied must be durable before the snapshot says so.
	if err := d.log.Sync(); err != nil {
		return err
	}
	if err := wal.WriteSnapshotParts(d.fs, d.dir, snapshotName, parts); err != nil {
		return err
	}
	minCut := global
	for _, c := range cuts {
		minCut = min(minCut, c)
	}
	d.log.Rotate()
	if err := d.log.Release(minCut); err != nil {
		return err
	}
	d.lastLSN, d.lastAt = global, now
	return nil
}

// snapshotParts copies every component into a snapshot payload, returned
// as its parts in order (written as they are: a payload built whole was a
// copy of them, grown as it went), and returns the cuts it holds; lastLSN
// is the journal's last LSN.
func (m *Store) snapshotParts(lastLSN func() uint64, now time.Time) (parts [][]byte, cuts [numShards]uint64, global uint64) {
	// Each component copies itself under its own lock; the sessions first,
	// then the processed messages, whose cut bounds every later one.
	cuts, sections := m.snapshotShards(lastLSN)
	global, processed := m.dedupe.snapshot(lastLSN())
	// The head and the sections' lengths, in one buffer never grown (the
	// parts are slices of it).
	head := enc{b: make([]byte, 0, 1+(2*numShards+1)*binary.MaxVarintLen64)}
	head.u8(snapshotVersion)
	for _, c := range cuts {
		head.uv(c)
	}
	head.uv(global)
	n := 2 // the processed messages, the rest
	for _, sec := range sections {
		n += 1 + len(sec)
	}
	parts = make([][]byte, 0, n)
	from := 0
	for _, sec := range sections {
		size := 0
		for _, c := range sec {
			size += len(c)
		}
		head.uv(uint64(size))
		parts = append(parts, head.b[from:len(head.b):len(head.b)])
		from = len(head.b)
		parts = append(parts, sec...)
	}
	var tail enc
	m.parts.snapshot(&tail)
	m.events.snapshot(&tail)
	m.senders.snapshot(&tail, now)
	return append(parts, processed, tail.b), cuts, global
}

// loadSnapshot restores every component from a snapshot payload, in the
// order Snapshot wrote them, and returns the cuts it holds.
func (m *Store) loadSnapshot(b []byte) (cuts [numShards]uint64, global uint64, err error) {
	d := dec{b: b}
	version := d.u8()
	if version < 1 || version > snapshotVersion {
		return cuts, 0, errDecode
	}
	for i := range cuts {
		cuts[i] = d.uv()
	}
	global = d.uv()
	var sections [numShards][]byte
	for i := range sections {
		sections[i] = d.raw()
	}
	if d.err != nil {
		return cuts, 0, d.err
	}
	now := m.opt.Now()
	// The sessions decode on every core while this goroutine reads the
	// sections after them, which touch none of the shards (the unmatched
	// events go to their own map, under the event table's lock). A
	// snapshot older than version 3 has no sender counts; restoreShards
	// seeds them from its sessions.
	shardsDone := make(chan error, 1)
	go func() { shardsDone <- m.restoreShards(sections, version, now) }()
	if version < 3 {
		m.dedupe.restore(&d, version, now)
		m.parts.restore(&d)
		m.events.restore(&d)
	} else if err := m.restoreTables(&d, version, now); err != nil {
		return cuts, 0, errors.Join(err, <-shardsDone)
	}
	if err := <-shardsDone; err != nil {
		return cuts, 0, err
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return cuts, global, d.err
}

// restoreTables restores the sections of a version 3 snapshot after the
// sessions: the processed messages and the sender counts fill at once,
// each its own table under its own lock (one after the other, they took
// as long as the sessions: this goroutine's share was the last to end).
// The sender counts come last: the processed messages are read once to
// reach the parts and events after them, and restored from their start
// while the sender counts are. It returns the processed messages' error;
// d is left after the sender counts, or failed.
func (m *Store) restoreTables(d *dec, version uint8, now time.Time) error {
	processed := *d
	scanSection(d, math.MinInt64)
	m.parts.restore(d)
	m.events.restore(d)
	sendersDone := make(chan struct{})
	go func() {
		defer close(sendersDone)
		m.senders.restore(d, now)
	}()
	m.dedupe.restore(&processed, version, now)
	<-sendersDone
	return processed.err
}

// gcPause turns the collector off while snapshots load, and back on (to
// the setting it had) once no Open is loading one: Opens may run at once,
// and the setting is the process's.
var gcPause struct {
	mu    sync.Mutex
	loads int // snapshots loading
	saved int // the GC percent before the first of them
}

// loadGCPercent is the GC percent while a snapshot loads: the heap may
// grow ten thousandfold before a collection starts, which no load reaches
// (a collection already running when the load starts ends as it would
// have: SetGCPercent(-1) would wait for its marking, half a second after
// a benchmark's setup).
const loadGCPercent = 1_000_000

// pauseGC turns the collector off until resume is called. A snapshot's load
// only grows the heap (its sessions, tables and indexes stay; the payload
// is held until the end): a collection during it frees next to nothing
// (14 MB of 556 MB in a 1M-session day) but marks the half-built heap and
// makes every pointer store of the load pay a write barrier while it marks,
// some 0.2 s of CPU of a 1.5 s recovery. The collector then marks the
// recovered heap once, after the load, concurrently with what follows. A
// memory limit (GOMEMLIMIT) still applies meanwhile.
func pauseGC() (resume func()) {
	gcPause.mu.Lock()
	if gcPause.loads == 0 {
		gcPause.saved = debug.SetGCPercent(loadGCPercent)
	}
	gcPause.loads++
	gcPause.mu.Unlock()
	return func() {
		gcPause.mu.Lock()
		if gcPause.loads--; gcPause.loads == 0 {
			// A setting made while the load ran (GOGC is the process's)
			// stands; only the load's own goes back.
			if now := debug.SetGCPercent(gcPause.saved); now != loadGCPercent {
				debug.SetGCPercent(now)
			}
		}
		gcPause.mu.Unlock()
	}
}

// maybeSnapshot snapshots when enough was written or enough time passed.
func (m *Store) maybeSnapshot() error {
	d := m.durable
	if d == nil {
		return nil
	}
	d.mu.Lock()
	written := d.log.LastLSN() - d.lastLSN
	due := written >= d.opt.SnapshotEvery || (written > 0 && m.opt.Now().Sub(d.lastAt) >= d.opt.SnapshotInterval)
	d.mu.Unlock()
	if !due {
		return nil
	}
	return m.Snapshot()
}

// Close takes a final snapshot and closes the log. The matcher must not be
// used afterwards.
func (m *Store) Close() error {
	d := m.durable
	if d == nil {
		return nil
	}
	err := m.Snapshot()
	if cerr := d.log.Close(); err == nil {
		err = cerr
	}
	return err
}

// Err returns why a durable matcher can no longer persist changes, or nil.
// After an error its memory may hold changes that never became durable:
// the process should stop serving and restart to recover.
func (m *Store) Err(context.Context) error {
	if m.durable == nil {
		return nil
	}
	if err := m.durable.log.Err(); err != nil {
		return fmt.Errorf("%w: %w", matcher.ErrUnavailable, err)
	}
	return nil
}

// Log returns the write-ahead log of a durable matcher (nil in memory).
func (m *Store) Log() *wal.WAL {
	if m.durable == nil {
		return nil
	}
	return m.durable.log
}
