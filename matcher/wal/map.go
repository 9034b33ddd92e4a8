package wal

// readAll returns the bytes of the file name and a function that releases
// them. Of the OS file system the file is mapped into memory (mapFile),
// not read: recovery reads a snapshot of hundreds of megabytes and
// segments of up to 64 MiB once, and a read copied each page of the page
// cache into a new heap page, faulted in one at a time, where a mapping
// shares the cached pages.
// Any other FS (a test's, which may fail its reads) is read with ReadFile.
// The bytes must not be used after release: a mapping's would fault.
func readAll(fsys FS, name string) (data []byte, release func(), err error) {
	switch fsys.(type) {
	case OS, *OS:
		return mapFile(name)
	}
	data, err = fsys.ReadFile(name)
	return data, func() {}, err
}
