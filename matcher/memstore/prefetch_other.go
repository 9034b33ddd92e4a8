//go:build !amd64 || purego

package memstore

// prefetchSlots does nothing here: the prefetch is an amd64 instruction
// (prefetch_amd64.s), and a miss it would have overlapped is only waited
// for later, where the table is read.
func prefetchSlots(pair, sender uintptr) {}
