//go:build !purego

package memstore

// prefetchSlots asks the processor to start loading the slot of a pair
// index at pair and the slot of the sender counts at sender, and returns
// at once (PREFETCHT0, prefetch_amd64.s): the cache lines of each slot's
// first and last bytes, which it may straddle (a slot array of more than
// 512 bytes starts 8 bytes into its heap object, after Go's malloc
// header: even a 16-byte pair slot can: TestSlotLines). A prefetch is a
// hint, not a load: it never faults, whatever the address (0 for no
// table, an address of a table since freed, or of nothing, is fetched or
// dropped, and only costs the fetch), and it is no memory read of Go's
// memory model, so it cannot race with a writer. One call for both
// slots: a call costs more than its four prefetches.
func prefetchSlots(pair, sender uintptr)
