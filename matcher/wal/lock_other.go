//go:build !unix

package wal

import (
	"errors"
	"fmt"
)

// LockFile is the file in a data directory that its owner holds locked.
const LockFile = "LOCK"

// ErrLocked is returned by LockDir when another process holds the directory.
var ErrLocked = errors.New("wal: data directory in use")

// LockDir is implemented with flock on Unix only; elsewhere it refuses, as
// a data directory that two processes may share is not safe to use.
func LockDir(dir string) (unlock func() error, err error) {
	return nil, fmt.Errorf("wal: cannot lock %s: data directory locking needs a Unix system", dir)
}
