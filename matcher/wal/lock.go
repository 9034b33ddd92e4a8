//go:build unix

package wal

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the file in a data directory that its owner holds locked.
const LockFile = "LOCK"

// ErrLocked is returned by LockDir when another process holds the directory.
var ErrLocked = errors.New("wal: data directory in use")

// LockDir makes dir one process's: it takes an exclusive flock on dir/LOCK
// (creating dir and the file when they do not exist) and writes the
// process id into the file. Call it before anything else reads or writes
// dir. When another process holds the lock, LockDir returns an error that
// wraps ErrLocked and names dir and the holder's pid, having changed
// nothing in dir. The lock lasts until unlock is called or the process
// exits, however it exits.
func LockDir(dir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) // no O_TRUNC: the holder's pid stays
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := io.ReadAll(io.LimitReader(f, 32)); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if abs, aerr := filepath.Abs(dir); aerr == nil {
				dir = abs
			}
			return nil, fmt.Errorf("%w: %s is locked by %s (%s); only one mogate may use a data directory", ErrLocked, dir, holder, filepath.Join(dir, LockFile))
		}
		return nil, fmt.Errorf("wal: lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: %s: %w", path, err)
	}
	return f.Close, nil // closing the descriptor releases the flock
}
