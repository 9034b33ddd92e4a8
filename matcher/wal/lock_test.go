//go:build unix

package wal

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLockDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, LockFile)
	b, err := os.ReadFile(lock)
	if err != nil || string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Fatalf("lock file = %q %v, want the pid", b, err)
	}
	before, _ := os.Stat(lock)

	// A second holder (flock is per open file, so this process will do) is
	// refused with the directory and the holder's pid, and changes nothing.
	time.Sleep(10 * time.Millisecond) // a write would move the mtime
	_, err = LockDir(dir)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("second LockDir = %v", err)
	}
	after, _ := os.Stat(lock)
	if b2, _ := os.ReadFile(lock); string(b2) != string(b) || !after.ModTime().Equal(before.ModTime()) || after.Size() != before.Size() {
		t.Fatalf("the refused LockDir changed the lock file: %q", b2)
	}

	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	unlock, err = LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after unlock: %v", err)
	}
	_ = unlock()
}

// TestLockDirReleasedOnKill: a holder killed with SIGKILL leaves the lock
// file behind but not the lock.
func TestLockDirReleasedOnKill(t *testing.T) {
	if dir := os.Getenv("WAL_LOCK_HELPER"); dir != "" {
		if _, err := LockDir(dir); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("locked")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockDirReleasedOnKill$")
	cmd.Env = append(os.Environ(), "WAL_LOCK_HELPER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "locked\n" {
		t.Fatalf("helper: %q", line)
	}
	if _, err := LockDir(dir); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", cmd.Process.Pid)) {
		t.Fatalf("LockDir while another process holds it = %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after the holder was killed: %v", err)
	}
	_ = unlock()
}
