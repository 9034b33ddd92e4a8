//go:build linux

package memstore

import (
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
)

// The environment of a restart's child process: the data directory it
// opens and the sessions it must find there.
const (
	restartDirEnv  = "MEMSTORE_RESTART_DIR"
	restartLenEnv  = "MEMSTORE_RESTART_SESSIONS"
	restartDataEnv = "MEMSTORE_RESTART_DATA"
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
// it is kept under $MEMSTORE_RESTART_DATA already.
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
