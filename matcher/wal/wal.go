package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Format constants (doc.go).
const (
	segmentMagic  = "MOGATWAL"
	headerSize    = 16
	frameOverhead = 16
	version       = 1
)

// Defaults.
const (
	DefaultSegmentSize = 64 << 20
	DefaultMaxRecord   = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors.
var (
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrTooLarge is returned for a record over MaxRecord.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrCorrupt is wrapped by recovery errors that name a file and offset.
	ErrCorrupt = errors.New("wal: corrupt")
)

// Options configure a log.
type Options struct {
	FS          FS           // nil: OS
	SegmentSize int64        // a new segment starts past this size; DefaultSegmentSize when 0
	MaxRecord   int          // DefaultMaxRecord when 0
	Logger      *slog.Logger // recovery reports; nil: discard
	// OnSync, when set, is called after each batch's write and fsync with
	// how long they took and their error (metrics); it must not block.
	OnSync func(took time.Duration, err error)
}

// WAL is an open log. Append and Wait are safe for concurrent use.
type WAL struct {
	dir string
	fs  FS
	opt Options

	mu      sync.Mutex
	pending *Batch
	writing *Batch // the batch being written and synced, if any
	spare   []byte // a drained batch's buffer, reused
	nextLSN uint64
	closed  bool
	err     error // sticky: set after a failed write or sync
	rotate  bool  // start a new segment before the next batch

	kick    chan struct{}
	stopped chan struct{}
	durable atomic.Uint64

	segMu    sync.Mutex
	segments []segment // oldest first; the last is active
	file     File      // active segment, writer-owned
	size     int64     // bytes in the active segment
}

type segment struct {
	first uint64
	name  string
}

// Batch is a group of records that become durable together.
//
// done is counted down once, by the writer, after err is set: any number
// of goroutines may Wait, before or after, as a closed channel let them.
// It is a field, not a channel of its own: a channel took an allocation
// of 96 bytes per group commit, one per record where each waits alone.
// (A Batch itself is never reused: a caller may hold it and Wait on it at
// any time later.)
type Batch struct {
	buf         []byte
	n           int // records
	first, last uint64
	done        sync.WaitGroup // 1 until written and synced, or failed; 0 for a batch made failed
	err         error
}

// newBatch returns an empty batch, not done, whose first record will be
// first.
func newBatch(first uint64, buf []byte) *Batch {
	b := &Batch{first: first, buf: buf}
	b.done.Add(1)
	return b
}

// Wait blocks until the batch is durable, or returns why it never will be.
func (b *Batch) Wait() error {
	b.done.Wait()
	return b.err
}

// LastLSN returns the LSN of the newest record in the batch (0 if none).
func (b *Batch) LastLSN() uint64 { return b.last }

// failed returns a batch that is done already, with err.
func failed(err error) *Batch { return &Batch{err: err} }

// Open recovers the log in dir (creating dir if needed), calling replay with
// every record in LSN order, then returns the log ready for appends. The
// payload passed to replay is only valid during the call.
func Open(dir string, opt Options, replay func(lsn uint64, payload []byte) error) (*WAL, error) {
	if opt.FS == nil {
		opt.FS = OS{}
	}
	if opt.SegmentSize == 0 {
		opt.SegmentSize = DefaultSegmentSize
	}
	if opt.MaxRecord == 0 {
		opt.MaxRecord = DefaultMaxRecord
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opt.FS.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	w := &WAL{dir: dir, fs: opt.FS, opt: opt, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	last, err := w.recover(replay)
	if err != nil {
		return nil, err
	}
	w.nextLSN = last + 1
	w.durable.Store(last)
	// A last segment without records (crash right after its header) would
	// collide with the new one's name: it holds nothing, so it goes.
	if n := len(w.segments); n > 0 && w.segments[n-1].first == w.nextLSN {
		if err := w.fs.Remove(filepath.Join(dir, w.segments[n-1].name)); err != nil {
			return nil, fmt.Errorf("wal: %w", err)
		}
		w.segments = w.segments[:n-1]
	}
	w.pending = newBatch(w.nextLSN, nil)
	if err := w.startSegment(w.nextLSN); err != nil {
		return nil, err
	}
	go w.writer()
	return w, nil
}

// FirstLSN returns the first LSN still held in segments (0 when none is).
func (w *WAL) FirstLSN() uint64 {
	w.segMu.Lock()
	defer w.segMu.Unlock()
	for _, s := range w.segments {
		return s.first
	}
	return 0
}

// Append copies the records into the pending batch, assigning each the next
// LSN, and returns that batch. It never blocks on I/O.
func (w *WAL) Append(recs ...[]byte) *Batch {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return failed(ErrClosed)
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return failed(err)
	}
	b := w.pending
	for _, r := range recs {
		if len(r) == 0 || len(r) > w.opt.MaxRecord {
			w.mu.Unlock()
			return failed(fmt.Errorf("%w: %d bytes (max %d)", ErrTooLarge, len(r), w.opt.MaxRecord))
		}
	}
	for _, r := range recs {
		b.buf = appendFrame(b.buf, w.nextLSN, r)
		b.last = w.nextLSN
		w.nextLSN++
	}
	b.n += len(recs)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return b
}

// Err returns why the log accepts no more records (closed, or a failed
// write or fsync), or nil while it is healthy.
func (w *WAL) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// LastLSN returns the LSN of the newest appended record, durable or not.
func (w *WAL) LastLSN() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextLSN - 1
}

// DurableLSN returns the LSN up to which every record is durable.
func (w *WAL) DurableLSN() uint64 { return w.durable.Load() }

// Sync waits until every record appended so far is durable.
func (w *WAL) Sync() error {
	w.mu.Lock()
	b := w.pending
	if b.last == 0 {
		b = w.writing // nothing pending: wait for the batch in flight, if any
	}
	err := w.err
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if b == nil {
		return nil
	}
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return b.Wait()
}

// Rotate makes the next batch start a new segment, so that the current one
// can be released once a snapshot covers it.
func (w *WAL) Rotate() {
	w.mu.Lock()
	w.rotate = true
	w.mu.Unlock()
}

// Release deletes the segments whose records all have LSN <= upTo; the
// active segment is never deleted.
func (w *WAL) Release(upTo uint64) error {
	w.segMu.Lock()
	var drop []segment
	for len(w.segments) > 1 && w.segments[1].first <= upTo+1 {
		drop = append(drop, w.segments[0])
		w.segments = w.segments[1:]
	}
	w.segMu.Unlock()
	for _, s := range drop {
		if err := w.fs.Remove(filepath.Join(w.dir, s.name)); err != nil {
			return fmt.Errorf("wal: release: %w", err)
		}
	}
	if len(drop) > 0 {
		return w.fs.SyncDir(w.dir)
	}
	return nil
}

// Segments returns the names of the segment files, oldest first.
func (w *WAL) Segments() []string {
	w.segMu.Lock()
	defer w.segMu.Unlock()
	out := make([]string, len(w.segments))
	for i, s := range w.segments {
		out[i] = s.name
	}
	return out
}

// Close syncs what was appended and closes the log.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-w.stopped
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	if cerr := w.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxGather bounds how often the writer yields to let a batch fill.
const maxGather = 64

// writer drains batches: one write and one fsync each. Callers whose batch
// was just synced append again at once; before taking the next batch the
// writer yields until it holds as many records as the last one did (or
// maxGather yields pass), so that they share the next fsync instead of
// trickling into several.
func (w *WAL) writer() {
	defer close(w.stopped)
	lastN := 1
	for {
		for i := 0; i < maxGather; i++ {
			w.mu.Lock()
			n, closed := w.pending.n, w.closed
			w.mu.Unlock()
			if n >= lastN || closed {
				break
			}
			runtime.Gosched()
		}
		w.mu.Lock()
		b := w.pending
		if b.last == 0 {
			closed := w.closed
			w.mu.Unlock()
			if closed {
				return
			}
			<-w.kick
			continue
		}
		rotate := w.rotate
		w.rotate = false
		lastN = max(1, b.n)
		w.pending = newBatch(w.nextLSN, w.spare[:0])
		w.spare = nil
		w.writing = b
		w.mu.Unlock()

		start := time.Now()
		err := w.write(b, rotate)
		if w.opt.OnSync != nil {
			w.opt.OnSync(time.Since(start), err)
		}
		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("wal: %w (the log accepts no more records; restart to recover)", err)
		}
		if err != nil {
			b.err = w.err
		}
		w.spare = b.buf
		w.writing = nil
		b.buf = nil
		w.mu.Unlock()
		if err == nil {
			w.durable.Store(b.last)
		}
		b.done.Done()
	}
}

func (w *WAL) write(b *Batch, rotate bool) error {
	if w.err != nil {
		return w.err
	}
	if (rotate && w.size > headerSize) || (w.size > headerSize && w.size+int64(len(b.buf)) > w.opt.SegmentSize) {
		if err := w.file.Close(); err != nil {
			return err
		}
		if err := w.startSegment(b.first); err != nil {
			return err
		}
	}
	n, err := w.file.Write(b.buf)
	w.size += int64(n)
	if err != nil {
		return err
	}
	return w.file.Sync()
}

// startSegment creates the segment whose first record will be first,
// writes its header, and makes file and directory entry durable.
func (w *WAL) startSegment(first uint64) error {
	name := segmentName(first)
	path := filepath.Join(w.dir, name)
	f, err := w.fs.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	var h [headerSize]byte
	copy(h[:], segmentMagic)
	binary.LittleEndian.PutUint32(h[8:], version)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		f.Close()
		return fmt.Errorf("wal: %w", err)
	}
	w.file, w.size = f, headerSize
	w.segMu.Lock()
	w.segments = append(w.segments, segment{first: first, name: name})
	w.segMu.Unlock()
	return nil
}

func segmentName(first uint64) string { return fmt.Sprintf("%020d.wal", first) }

func parseSegmentName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".wal")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// appendFrame appends the frame of payload to dst. The header is built in
// place, in dst: a header array of its own would escape to the heap (the
// checksum is computed through a function value), an allocation per
// record.
func appendFrame(dst []byte, lsn uint64, payload []byte) []byte {
	start := len(dst)
	dst = slices.Grow(dst, frameOverhead+len(payload))[:start+frameOverhead]
	h := dst[start:]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:], lsn)
	crc := crc32.Update(0, castagnoli, h[8:16])
	crc = crc32.Update(crc, castagnoli, payload)
	crc = crc32.Update(crc, castagnoli, h[0:4])
	binary.LittleEndian.PutUint32(h[4:], crc)
	return append(dst, payload...)
}

// DecodeFrame reads the frame at the start of b. It returns the LSN, the
// payload (aliasing b), the frame's size, and false when the bytes are not
// a valid frame: short, a length of 0 or over max, or a checksum mismatch.
func DecodeFrame(b []byte, max int) (lsn uint64, payload []byte, size int, ok bool) {
	if len(b) < frameOverhead {
		return 0, nil, 0, false
	}
	n := binary.LittleEndian.Uint32(b[0:])
	if n == 0 || uint64(n) > uint64(max) || uint64(n) > uint64(len(b)-frameOverhead) {
		return 0, nil, 0, false
	}
	size = frameOverhead + int(n)
	crc := crc32.Update(0, castagnoli, b[8:size])
	crc = crc32.Update(crc, castagnoli, b[0:4])
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return 0, nil, 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]), b[frameOverhead:size], size, true
}
