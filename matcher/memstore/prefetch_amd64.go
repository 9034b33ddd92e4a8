//go:build !purego

package memstore

// prefetchLines asks the processor to start loading the cache lines that
// hold bytes p and p+n-1 (n > 0), and returns at once (PREFETCHT0,
// prefetch_amd64.s). A prefetch is a hint, not a load: it never faults,
// whatever p is (an address of a table since freed, or of nothing, is
// fetched or dropped, and only costs the fetch), and it is no memory read
// of Go's memory model, so it cannot race with a writer.
func prefetchLines(p, n uintptr)
