//go:build unix

package wal

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"
)

// mapFile maps the file name read-only. A file that cannot be mapped (empty,
// too large for the address space, or on a file system without mmap) is
// read instead. Each page of a mapping is read once before it is returned
// (touch): a file the disk cannot read fails here with an error, as a read
// would, rather than as a fault that kills the process later. A page the
// kernel drops from its cache afterwards and cannot read again, or a file
// another process cuts while it is mapped, still faults: the directory's
// lock keeps other mogate processes out (docs/operations.md).
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
			if err := touch(b); err != nil {
				_ = syscall.Munmap(b)
				return nil, nil, fmt.Errorf("read %s: %w", name, err)
			}
			return b, func() { _ = syscall.Munmap(b) }, nil
		}
	}
	data, err = os.ReadFile(name)
	return data, func() {}, err
}

// touch reads a byte of each page of the mapping b, with faults turned
// into an error (debug.SetPanicOnFault): what an I/O error or a file
// shorter than its mapping does to a mapped page.
func touch(b []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(interface{ Addr() uintptr })
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("a page of the mapping, at %#x, cannot be read (an I/O error, or the file was cut)", f.Addr())
		}
	}()
	page := os.Getpagesize()
	var sum byte
	for i := 0; i < len(b); i += page {
		sum += b[i]
	}
	runtime.KeepAlive(sum) // the reads are the point: kept
	return nil
}
