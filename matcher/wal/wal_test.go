package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultFS wraps OS and counts syncs; failSync makes file syncs fail; a
// file sync waits for hold, when set, to be closed.
type faultFS struct {
	OS
	syncs    atomic.Int64
	failSync atomic.Bool
	failOpen atomic.Bool
	hold     atomic.Pointer[chan struct{}]
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if f.failOpen.Load() {
		return nil, errors.New("injected open failure")
	}
	file, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFile) Sync() error {
	if hold := f.fs.hold.Load(); hold != nil {
		<-*hold
	}
	f.fs.syncs.Add(1)
	if f.fs.failSync.Load() {
		return errors.New("injected fsync failure")
	}
	return f.File.Sync()
}

type rec struct {
	lsn uint64
	p   string
}

func open(t *testing.T, dir string, o Options) (*WAL, []rec) {
	t.Helper()
	var got []rec
	w, err := Open(dir, o, func(lsn uint64, p []byte) error {
		got = append(got, rec{lsn, string(p)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w, got
}

func appendAll(t *testing.T, w *WAL, ps ...string) {
	t.Helper()
	for _, p := range ps {
		if err := w.Append([]byte(p)).Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	w, got := open(t, dir, Options{SegmentSize: 200})
	if len(got) != 0 {
		t.Fatal("fresh log replayed records")
	}
	var want []rec
	for i := range 50 {
		p := fmt.Sprintf("record-%02d", i)
		appendAll(t, w, p)
		want = append(want, rec{uint64(i + 1), p})
	}
	if n := len(w.Segments()); n < 5 {
		t.Fatalf("only %d segments with SegmentSize 200", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, got := open(t, dir, Options{SegmentSize: 200})
	defer w2.Close()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("replayed %v\nwant %v", got, want)
	}
	if b := w2.Append([]byte("next")); b.Wait() != nil || b.LastLSN() != 51 {
		t.Fatalf("next LSN = %d", b.LastLSN())
	}
	w2.Close()
	_, got = open(t, dir, Options{})
	if got[len(got)-1] != (rec{51, "next"}) {
		t.Fatalf("last = %v", got[len(got)-1])
	}
}

func TestReopenEmptyLog(t *testing.T) {
	dir := t.TempDir()
	for range 3 {
		w, got := open(t, dir, Options{})
		if len(got) != 0 {
			t.Fatal(got)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	ffs := &faultFS{}
	w, _ := open(t, t.TempDir(), Options{FS: ffs})
	defer w.Close()
	base := ffs.syncs.Load()
	const writers, each = 64, 50
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := w.Append([]byte(fmt.Sprintf("%d-%d", g, i))).Wait(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := ffs.syncs.Load() - base
	if syncs >= writers*each/2 {
		t.Fatalf("%d fsyncs for %d records: no group commit", syncs, writers*each)
	}
	if w.DurableLSN() != writers*each {
		t.Fatalf("durable LSN %d", w.DurableLSN())
	}
	t.Logf("%d records, %d fsyncs", writers*each, syncs)
}

func TestWaitMeansSynced(t *testing.T) {
	ffs := &faultFS{}
	w, _ := open(t, t.TempDir(), Options{FS: ffs})
	defer w.Close()
	before := ffs.syncs.Load()
	b := w.Append([]byte("x"))
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	if ffs.syncs.Load() == before || w.DurableLSN() < b.LastLSN() {
		t.Fatal("Wait returned before an fsync covered the record")
	}
}

func TestSyncFailureIsSticky(t *testing.T) {
	ffs := &faultFS{}
	dir := t.TempDir()
	var synced, failed atomic.Int32 // OnSync reports each batch, failures included
	w, _ := open(t, dir, Options{FS: ffs, OnSync: func(_ time.Duration, err error) {
		if err != nil {
			failed.Add(1)
		} else {
			synced.Add(1)
		}
	}})
	appendAll(t, w, "durable")
	ffs.failSync.Store(true)
	if err := w.Append([]byte("lost")).Wait(); err == nil {
		t.Fatal("Wait succeeded although fsync failed")
	}
	ffs.failSync.Store(false)
	if err := w.Append([]byte("after")).Wait(); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("append after a failed fsync: %v", err)
	}
	if synced.Load() != 1 || failed.Load() != 1 {
		t.Fatalf("OnSync saw %d synced and %d failed batches, want 1 and 1", synced.Load(), failed.Load())
	}
	_ = w.Close()
	_, got := open(t, dir, Options{})
	if len(got) == 0 || got[0].p != "durable" {
		t.Fatalf("recovered %v", got)
	}
}

func TestTooLarge(t *testing.T) {
	w, _ := open(t, t.TempDir(), Options{MaxRecord: 10})
	defer w.Close()
	if err := w.Append(make([]byte, 11)).Wait(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("11 bytes: %v", err)
	}
	if err := w.Append(nil).Wait(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("empty record: %v", err)
	}
	appendAll(t, w, "0123456789")
}

func TestRelease(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	appendAll(t, w, "a", "b")
	w.Rotate()
	appendAll(t, w, "c")
	w.Rotate()
	appendAll(t, w, "d")
	if n := len(w.Segments()); n != 3 {
		t.Fatalf("%d segments", n)
	}
	if err := w.Release(3); err != nil {
		t.Fatal(err)
	}
	if segs := w.Segments(); len(segs) != 1 || segs[0] != segmentName(4) {
		t.Fatalf("after Release(3): %v", segs)
	}
	w.Close()
	_, got := open(t, dir, Options{})
	if len(got) != 1 || got[0] != (rec{4, "d"}) {
		t.Fatalf("replay after release = %v", got)
	}
}

func TestCloseThenAppend(t *testing.T) {
	w, _ := open(t, t.TempDir(), Options{})
	w.Close()
	if err := w.Append([]byte("x")).Wait(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

// Corruption cases: each mutates the files of a log holding records
// "r00".."r09" in two segments (r00-r04, r05-r09), then reopens it.
func TestCorruption(t *testing.T) {
	type result struct {
		keep   int    // records recovered
		err    string // substring of the Open error; "" for success
		broken bool   // a .broken file is expected
	}
	lastSeg := func(dir string) string { return filepath.Join(dir, segmentName(6)) }
	firstSeg := func(dir string) string { return filepath.Join(dir, segmentName(1)) }
	size := func(p string) int64 { st, _ := os.Stat(p); return st.Size() }
	mutate := func(p string, f func([]byte) []byte) {
		b, _ := os.ReadFile(p)
		_ = os.WriteFile(p, f(b), 0o600)
	}
	frame := int64(frameOverhead + 3)
	cases := []struct {
		name string
		do   func(dir string)
		want result
	}{
		{"intact", func(string) {}, result{keep: 10}},
		{"truncated mid-frame", func(d string) { os.Truncate(lastSeg(d), size(lastSeg(d))-5) }, result{keep: 9, broken: true}},
		{"truncated mid-header of a frame", func(d string) { os.Truncate(lastSeg(d), size(lastSeg(d))-frame+4) }, result{keep: 9, broken: true}},
		{"flipped byte in last frame", func(d string) {
			mutate(lastSeg(d), func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b })
		}, result{keep: 9, broken: true}},
		{"zeroed tail", func(d string) {
			mutate(lastSeg(d), func(b []byte) []byte { return append(b, make([]byte, 4096)...) })
		}, result{keep: 10, broken: true}},
		{"garbage length at tail", func(d string) {
			mutate(lastSeg(d), func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4) })
		}, result{keep: 10, broken: true}},
		{"flipped byte mid last segment", func(d string) {
			mutate(lastSeg(d), func(b []byte) []byte { b[headerSize+frameOverhead+1] ^= 0x01; return b })
		}, result{err: "offset 16"}},
		{"garbage length mid last segment", func(d string) {
			mutate(lastSeg(d), func(b []byte) []byte { b[headerSize+3] = 0x7f; return b })
		}, result{err: "offset 16"}},
		{"flipped byte in earlier segment", func(d string) {
			mutate(firstSeg(d), func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b })
		}, result{err: segmentName(1)}},
		{"truncated earlier segment", func(d string) { os.Truncate(firstSeg(d), size(firstSeg(d))-1) }, result{err: segmentName(1)}},
		{"missing middle segment", func(d string) {
			// three segments, the middle one deleted: an LSN gap
			os.Rename(lastSeg(d), filepath.Join(d, segmentName(8)))
		}, result{err: "starts at LSN 8"}},
		{"empty last segment", func(d string) { os.WriteFile(filepath.Join(d, segmentName(11)), nil, 0o600) }, result{keep: 10}},
		{"torn header of last segment", func(d string) {
			os.WriteFile(filepath.Join(d, segmentName(11)), []byte("MOGA"), 0o600)
		}, result{keep: 10, broken: true}},
		{"bad magic in earlier segment", func(d string) {
			mutate(firstSeg(d), func(b []byte) []byte { b[0] = 'X'; return b })
		}, result{err: "bad segment header"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, _ := open(t, dir, Options{})
			for i := range 10 {
				if i == 5 {
					w.Rotate()
				}
				appendAll(t, w, fmt.Sprintf("r%02d", i))
			}
			w.Close()
			tc.do(dir)
			before := dirListing(dir)
			var got []rec
			w2, err := Open(dir, Options{}, func(lsn uint64, p []byte) error { got = append(got, rec{lsn, string(p)}); return nil })
			if tc.want.err != "" {
				if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want.err) {
					t.Fatalf("Open = %v, want error containing %q", err, tc.want.err)
				}
				if after := dirListing(dir); after != before {
					t.Fatalf("a failed recovery changed the files:\n%s\n%s", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer w2.Close()
			if len(got) != tc.want.keep {
				t.Fatalf("recovered %d records, want %d: %v", len(got), tc.want.keep, got)
			}
			for i, r := range got {
				if r != (rec{uint64(i + 1), fmt.Sprintf("r%02d", i)}) {
					t.Fatalf("record %d = %v", i, r)
				}
			}
			broken, _ := filepath.Glob(filepath.Join(dir, "*.broken"))
			if tc.want.broken != (len(broken) > 0) {
				t.Fatalf(".broken files: %v", broken)
			}
			// The log goes on after recovery.
			if b := w2.Append([]byte("after")); b.Wait() != nil || b.LastLSN() != uint64(tc.want.keep+1) {
				t.Fatalf("append after recovery: LSN %d", b.LastLSN())
			}
		})
	}
}

func dirListing(dir string) string {
	es, _ := os.ReadDir(dir)
	var b strings.Builder
	for _, e := range es {
		st, _ := os.Stat(filepath.Join(dir, e.Name()))
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		fmt.Fprintf(&b, "%s %d %x\n", e.Name(), st.Size(), crc(data))
	}
	return b.String()
}

func crc(b []byte) uint32 {
	var h uint32
	for _, c := range b {
		h = h*31 + uint32(c)
	}
	return h
}

// readSnapshot reads dir/name with ReadSnapshot and with LoadSnapshot, of
// the OS (which maps it) and of a wrapping FS (which reads it), and fails
// unless all three agree.
func readSnapshot(t *testing.T, dir, name string) ([]byte, error) {
	t.Helper()
	want, werr := ReadSnapshot(nil, dir, name)
	for _, fsys := range []FS{OS{}, &faultFS{}} {
		got, release, err := LoadSnapshot(fsys, dir, name)
		if fmt.Sprint(err) != fmt.Sprint(werr) || !errors.Is(err, ErrCorrupt) && errors.Is(werr, ErrCorrupt) || !bytes.Equal(got, want) {
			t.Fatalf("LoadSnapshot(%T): %q, %v; ReadSnapshot: %q, %v", fsys, got, err, want, werr)
		}
		if err == nil {
			release()
		}
	}
	return want, werr
}

func TestSnapshots(t *testing.T) {
	dir := t.TempDir()
	if _, err := readSnapshot(t, dir, "s"); !errors.Is(err, ErrNoSnapshot) {
		t.Fatal(err)
	}
	if err := WriteSnapshot(nil, dir, "s", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if b, err := readSnapshot(t, dir, "s"); err != nil || string(b) != "one" {
		t.Fatalf("%q %v", b, err)
	}
	// A failed write (partial snapshot) leaves the previous one intact.
	ffs := &faultFS{}
	ffs.failSync.Store(true)
	if err := WriteSnapshot(ffs, dir, "s", []byte("two")); err == nil {
		t.Fatal("snapshot written although fsync failed")
	}
	if b, err := readSnapshot(t, dir, "s"); err != nil || string(b) != "one" {
		t.Fatalf("after failed write: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("temp file left behind")
	}
	// A partial snapshot under the final name (disk damage) is an error naming it.
	p := filepath.Join(dir, "s")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-1], 0o600)
	if _, err := readSnapshot(t, dir, "s"); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
		t.Fatalf("truncated snapshot: %v", err)
	}
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o600)
	if _, err := readSnapshot(t, dir, "s"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped snapshot: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(appendFrame(nil, 7, []byte("hello")))
	f.Add([]byte{0, 0, 0, 0})
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		lsn, p, size, ok := DecodeFrame(b, 1<<10)
		if !ok {
			return
		}
		if size > len(b) || size != frameOverhead+len(p) || len(p) == 0 {
			t.Fatalf("size %d, payload %d, input %d", size, len(p), len(b))
		}
		if again := appendFrame(nil, lsn, p); !bytes.Equal(again, b[:size]) {
			t.Fatal("a decoded frame does not re-encode to the same bytes")
		}
	})
}

// TestAppendFrameAllocs: a frame is built in the batch's buffer, without an
// allocation of its own (its header escaped to the heap: one per record),
// and decodes back to its LSN and payload.
func TestAppendFrameAllocs(t *testing.T) {
	payload := []byte("a record of some forty bytes, like OpVerify")
	buf := make([]byte, 0, 4<<10)
	allocs := testing.AllocsPerRun(100, func() {
		buf = appendFrame(buf[:0], 42, payload)
	})
	if allocs != 0 {
		t.Errorf("appendFrame into a buffer with room: %v allocations, want 0", allocs)
	}
	// Built over the bytes of an older frame, it is as good as a new one.
	buf = appendFrame(append(buf[:0], bytes.Repeat([]byte{0xff}, frameOverhead)...)[:0], 7, payload)
	lsn, got, size, ok := DecodeFrame(buf, DefaultMaxRecord)
	if !ok || lsn != 7 || !bytes.Equal(got, payload) || size != frameOverhead+len(payload) {
		t.Fatalf("DecodeFrame = %d %q %d %v", lsn, got, size, ok)
	}
}

// TestWaitersOfOneBatch: every goroutine waiting on a batch, from before
// its write or after, returns once it is synced, with its error: nil, or
// the failed fsync's, for each of them.
func TestWaitersOfOneBatch(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprint("fail=", fail), func(t *testing.T) {
			ffs := &faultFS{}
			w, _ := open(t, t.TempDir(), Options{FS: ffs})
			defer w.Close()
			hold := make(chan struct{})
			ffs.hold.Store(&hold)
			b := w.Append([]byte("x"))
			const waiters = 8
			errs := make(chan error, waiters)
			for range waiters {
				go func() { errs <- b.Wait() }()
			}
			select {
			case err := <-errs:
				t.Fatalf("Wait returned %v before the batch was synced", err)
			default:
			}
			ffs.failSync.Store(fail)
			ffs.hold.Store(nil)
			close(hold)
			check := func(err error) {
				t.Helper()
				if (err != nil) != fail || fail && !strings.Contains(err.Error(), "injected fsync failure") {
					t.Errorf("Wait = %v, want an error: %v", err, fail)
				}
			}
			check(b.Wait())
			for range waiters {
				check(<-errs)
			}
			check(b.Wait()) // once done
			if got := w.DurableLSN() >= b.LastLSN(); got == fail {
				t.Errorf("durable past the batch: %v", got)
			}
		})
	}
}

// TestGroupCommitAllocs: a record appended and waited for alone (a group
// commit of one) costs one allocation, its batch: the batch's done
// channel took another.
func TestGroupCommitAllocs(t *testing.T) {
	w, _ := open(t, t.TempDir(), Options{})
	defer w.Close()
	rec := []byte("a record of some forty bytes, like OpVerify")
	appendAll(t, w, "warm") // the spare buffer exists
	allocs := testing.AllocsPerRun(50, func() {
		if err := w.Append(rec).Wait(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("an append waited for alone: %v allocations, want at most 1", allocs)
	}
}

// TestSnapshotParts: a snapshot written from parts is the file written
// from their concatenation, byte for byte, and reads back as it: parts
// empty, of one byte, larger than a page, and none at all.
func TestSnapshotParts(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	for _, parts := range [][][]byte{nil, {nil}, {[]byte("one")}, {{}, []byte("a"), nil, big, []byte("b"), big[:7], {}}} {
		dir := t.TempDir()
		whole := bytes.Join(parts, nil)
		if err := WriteSnapshotParts(nil, dir, "parts", parts); err != nil {
			t.Fatal(err)
		}
		if err := WriteSnapshot(nil, dir, "whole", whole); err != nil {
			t.Fatal(err)
		}
		a, errA := os.ReadFile(filepath.Join(dir, "parts"))
		b, errB := os.ReadFile(filepath.Join(dir, "whole"))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Fatalf("%d parts: files differ (%v %v)", len(parts), errA, errB)
		}
		if got, err := readSnapshot(t, dir, "parts"); err != nil || !bytes.Equal(got, whole) {
			t.Fatalf("%d parts: read %d bytes, %v", len(parts), len(got), err)
		}
	}
}

// writeCountFS counts the write calls made to the files it opens.
type writeCountFS struct {
	OS
	writes atomic.Int64
}

type writeCountFile struct {
	File
	fs *writeCountFS
}

func (f *writeCountFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	file, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &writeCountFile{File: file, fs: f}, nil
}

func (f *writeCountFile) Write(p []byte) (int, error) {
	f.fs.writes.Add(1)
	return f.File.Write(p)
}

// TestSnapshotPartsBuffered: a snapshot of many small parts (an empty
// store's is some 130, most under 16 bytes) is written in a few calls, not
// one a part (review R3), and a part larger than the buffer still arrives
// whole.
func TestSnapshotPartsBuffered(t *testing.T) {
	var parts [][]byte
	for i := range 130 {
		parts = append(parts, []byte(fmt.Sprintf("part %d;", i)))
	}
	for _, tc := range []struct {
		parts     [][]byte
		maxWrites int64
	}{
		{parts, 1},
		{append(slices.Clone(parts), bytes.Repeat([]byte("x"), 200<<10)), 3},
	} {
		fsys := &writeCountFS{}
		dir := t.TempDir()
		if err := WriteSnapshotParts(fsys, dir, "snap", tc.parts); err != nil {
			t.Fatal(err)
		}
		if n := fsys.writes.Load(); n > tc.maxWrites {
			t.Errorf("%d parts: %d write calls, want at most %d", len(tc.parts), n, tc.maxWrites)
		}
		whole := bytes.Join(tc.parts, nil)
		if got, err := readSnapshot(t, dir, "snap"); err != nil || !bytes.Equal(got, whole) {
			t.Fatalf("%d parts: read %d bytes, %v", len(tc.parts), len(got), err)
		}
	}
}
