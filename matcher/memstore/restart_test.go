//go:build linux

package memstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The environment of a restart's child process: the data directory it
// opens and the sessions it must find there.
const (
	restartDirEnv  = "MEMSTORE_RESTART_DIR"
	restartLenEnv  = "MEMSTORE_RESTART_SESSIONS"
	restartDataEnv = "MEMSTORE_RESTART_DATA"
	tableFaultsEnv = "MEMSTORE_TABLE_FAULTS" // TestTablePagesFaultOnce's child
)

// BenchmarkRestart1M is a node's restart as its user feels it: a fresh
// process (this test binary, run again as TestRestartChild) opens the data
// directories of BenchmarkRecovery1M and exits. A fresh process touches
// its heap, and the bytes it reads, for the first time: the page faults
// and system time that an Open in a warmed-up process (BenchmarkRecovery1M)
// does not see. It reports the child's wall time (exec to exit), its user
// and system CPU time, minor page faults and peak RSS.
//
// The directories are made in a temporary directory, or kept under
// $MEMSTORE_RESTART_DATA (made there when missing): builds compared on the
// same bytes.
func BenchmarkRestart1M(b *testing.B) {
	const n = 1_000_000
	for _, c := range recoveryMixes {
		b.Run(c.name, func(b *testing.B) {
			dir := restartDir(b, c.name, n, func(dir string) { writeRecoveryDir(b, dir, n, c.req, c.verifiedPct) })
			runtime.GC() // the directory's making is garbage: none of it in the child's way
			debug.FreeOSMemory()
			b.ResetTimer()
			for range b.N {
				ru, peakKiB, wall := restartOnce(b, dir, n)
				b.ReportMetric(wall.Seconds(), "s/restart")
				b.ReportMetric(time.Duration(ru.Utime.Nano()).Seconds(), "user-s/restart")
				b.ReportMetric(time.Duration(ru.Stime.Nano()).Seconds(), "sys-s/restart")
				b.ReportMetric(float64(ru.Minflt), "minflt/restart")
				b.ReportMetric(float64(peakKiB)/1024, "peak-MB")
			}
		})
	}
}

// restartDir returns the data directory named name, made by write unless
// it is kept under $MEMSTORE_RESTART_DATA already. A kept directory serves
// for a day: past the retention its verified sessions are dropped on
// load, and the child's count check fails (remove it to make it anew).
func restartDir(b *testing.B, name string, n int, write func(dir string)) string {
	root := os.Getenv(restartDataEnv)
	if root == "" {
		dir := b.TempDir()
		write(dir)
		return dir
	}
	dir := filepath.Join(root, name+"-"+strconv.Itoa(n))
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); err == nil {
		return dir
	}
	write(dir)
	return dir
}

// restartOnce runs TestRestartChild on dir in a new process and returns
// its resource usage, its peak resident set (KiB) and its wall time. The
// peak is the child's own VmHWM: the wait's ru_maxrss would be this
// process's, whose memory the child shared until its exec.
func restartOnce(tb testing.TB, dir string, n int) (ru *syscall.Rusage, peakKiB int, wall time.Duration) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestartChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), restartDirEnv+"="+dir, restartLenEnv+"="+strconv.Itoa(n))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall = time.Since(start)
	if err != nil {
		tb.Fatalf("restart: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(out)
	if m == nil {
		tb.Fatalf("restart: no VmHWM in\n%s", out)
	}
	peakKiB, _ = strconv.Atoi(string(m[1]))
	return cmd.ProcessState.SysUsage().(*syscall.Rusage), peakKiB, wall
}

// TestRestartChild is BenchmarkRestart1M's child process: it opens the
// directory in $MEMSTORE_RESTART_DIR, checks the number of sessions, logs
// its peak resident set, and exits. Without it set it does nothing.
func TestRestartChild(t *testing.T) {
	dir := os.Getenv(restartDirEnv)
	if dir == "" {
		t.Skip("the child of BenchmarkRestart1M")
	}
	m, err := Open(dir, Options{}, DurableOptions{SnapshotEvery: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := strconv.Atoi(os.Getenv(restartLenEnv)); m.Len() != want {
		t.Fatalf("recovered %d sessions, want %d", m.Len(), want)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", regexp.MustCompile(`VmHWM:.*`).Find(status))
	if err := m.Log().Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTablePagesFaultOnce: the pages of a table just made are written
// (touchPages), so a probe's read never maps the zero page, to fault again
// at the insertion's write. Making an id index and a pair index of 16 MiB
// each and a sender table of 18 MiB faults their 12,800 pages in (without:
// next to none); probing every page of them then faults next to nothing
// (without: 12,800; under the race detector a read faults its shadow
// memory in, so that is not checked). It runs in a child process, whose
// tables are fresh memory, and only where the heap gets 4 KiB pages: with
// transparent huge pages "always" a table is a few huge pages, each
// faulted once whatever the order of its accesses.
func TestTablePagesFaultOnce(t *testing.T) {
	if reason := hugeHeapPages(); reason != "" {
		t.Skip(reason)
	}
	if os.Getenv(tableFaultsEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTablePagesFaultOnce$", "-test.count=1")
		cmd.Env = append(os.Environ(), tableFaultsEnv+"=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	debug.SetGCPercent(-1)
	before := minorFaults(t)
	var ids idIndex
	ids.reserve(1 << 20) // 2M slots of 8 bytes
	ids.put(&session{id: [16]byte{1}})
	var pairs pairIndex
	pairs.reserve(1 << 19) // 1M slots of 16 bytes
	pairs.set("+1", "+2", &session{number: "+2", to: "+1"})
	var senders senderTable
	senders.reserve(3 << 16) // 256k slots of 72 bytes
	senders.getOrAdd(senderID{"k", "+2"})
	pages := (len(ids.slots)*int(unsafe.Sizeof(ids.slots[0])) + len(pairs.slots)*int(unsafe.Sizeof(pairs.slots[0])) +
		len(senders.slots)*int(unsafe.Sizeof(senders.slots[0]))) / pageSize
	made := minorFaults(t)
	if made-before < int64(pages)*9/10 {
		t.Errorf("making three tables of %d pages in all faulted %d in", pages, made-before)
	}
	var k [16]byte
	for i := range uint64(1 << 16) { // every page is probed but with e^-16 odds
		binary.LittleEndian.PutUint64(k[:], i*0x9e3779b97f4a7c15)
		ids.get(k)
		pairs.getWithHash("+1", "", hashRaw(&k))
		senders.findHash(hashRaw(&k) | 1)
	}
	if faults := minorFaults(t) - made; faults > int64(pages)/8 && !raceEnabled {
		t.Errorf("probing three fresh tables of %d pages in all took %d page faults", pages, faults)
	}
}

// hugeHeapPages says why the heap's pages may be other than 4 KiB ones
// ("" when they are not): another page size, or transparent huge pages
// "always", for the 2 MiB size or (kernels 6.8 on) any other.
func hugeHeapPages() string {
	if pageSize != 4096 {
		return fmt.Sprintf("page size %d", pageSize)
	}
	top, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return fmt.Sprintf("transparent huge pages unknown: %v", err)
	}
	if bytes.Contains(top, []byte("[always]")) {
		return "transparent huge pages always"
	}
	sizes, _ := filepath.Glob("/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled")
	for _, f := range sizes {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte("[always]")) {
			return "transparent huge pages always for " + filepath.Base(filepath.Dir(f))
		}
	}
	return ""
}

func minorFaults(t *testing.T) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return int64(ru.Minflt) // int32 on 32-bit systems
}
