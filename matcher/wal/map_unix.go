//go:build unix

package wal

import (
	"os"
	"syscall"
)

// mapFile maps the file name read-only. A file that cannot be mapped (empty,
// too large for the address space, or on a file system without mmap) is
// read instead.
func mapFile(name string) (data []byte, release func(), err error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := fi.Size()
	if size > 0 && size == int64(int(size)) {
		b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
		if err == nil {
			return b, func() { _ = syscall.Munmap(b) }, nil
		}
	}
	data, err = os.ReadFile(name)
	return data, func() {}, err
}
