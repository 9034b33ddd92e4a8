package wal

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"
)

// mappingOf returns the file mapped at the address of b's first byte, from
// /proc/self/maps, or "" when no file is mapped there.
func mappingOf(t *testing.T, b []byte) string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var lo, hi uintptr
		if _, err := fmt.Sscanf(sc.Text(), "%x-%x", &lo, &hi); err != nil {
			t.Fatal(err)
		}
		if fields := strings.Fields(sc.Text()); lo <= addr && addr < hi && len(fields) == 6 {
			return fields[5]
		}
	}
	return ""
}

// TestLoadSnapshotMapsFile: of the OS file system the snapshot's payload
// is its file mapped, not a copy, and release unmaps it.
func TestLoadSnapshotMapsFile(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSnapshot(nil, dir, "s", make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s")
	p, release, err := LoadSnapshot(OS{}, dir, "s")
	if err != nil {
		t.Fatal(err)
	}
	if got := mappingOf(t, p); got != path {
		t.Fatalf("the payload is in %q, not a mapping of %s", got, path)
	}
	release()
	if got := mappingOf(t, p); got != "" {
		t.Fatalf("released, the payload's address still maps %q", got)
	}
}

// readCounter is an FS that is not the OS's: recovery reads its files
// with ReadFile (which a test's FS may fail), and it counts the reads.
type readCounter struct {
	OS
	reads *atomic.Int64
}

func (r readCounter) ReadFile(name string) ([]byte, error) {
	r.reads.Add(1)
	return os.ReadFile(name)
}

// TestRecoverMapsSegments: recovery hands replay the records of a segment
// mapped from its file, of the OS's file system, and read with ReadFile
// from any other.
func TestRecoverMapsSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	appendAll(t, w, "a", "b")
	w.Close()
	var reads atomic.Int64
	for _, fsys := range []FS{OS{}, readCounter{reads: &reads}} {
		var in []string
		w, err := Open(dir, Options{FS: fsys}, func(_ uint64, p []byte) error {
			in = append(in, mappingOf(t, p))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		_, isOS := fsys.(OS)
		for _, file := range in {
			if mapped := strings.HasSuffix(file, ".wal"); mapped != isOS {
				t.Errorf("%T: a record in %q", fsys, file)
			}
		}
		if len(in) != 2 {
			t.Fatalf("%T: %d records replayed", fsys, len(in))
		}
	}
	if reads.Load() == 0 {
		t.Error("the other FS's ReadFile was not called")
	}
}

// TestTouchFaultIsError: a mapped page the file no longer holds (cut after
// it was mapped; an I/O error faults alike) is an error of touch, not a
// fault that kills the process.
func TestTouchFaultIsError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	page := os.Getpagesize()
	if err := os.WriteFile(path, make([]byte, 3*page), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := syscall.Mmap(int(f.Fd()), 0, 3*page, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	if err := touch(b); err != nil {
		t.Fatalf("a whole file: %v", err)
	}
	if err := os.Truncate(path, int64(page)); err != nil {
		t.Fatal(err)
	}
	if err := touch(b); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Fatalf("a file cut to one page of three: %v, want a page that cannot be read", err)
	}
	if debug.SetPanicOnFault(false) {
		t.Error("touch left the goroutine's faults as panics")
	}
}
