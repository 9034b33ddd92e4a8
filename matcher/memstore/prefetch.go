package memstore

import (
	"sync/atomic"
	"unsafe"
)

// A matching ingest at 1M pending makes three loads that miss the cache,
// each of whose address the one before gives: the pair's slot in its
// shard's pair index, the session the slot names, and the sender's slot
// in the 24 h sender counts, which the session's API key picks. The slots'
// places in their tables follow from the message alone (its number and
// the hash of its sender) and from the API key last counted, so ingest asks
// for both before it takes a lock (prefetchSlots, with the addresses
// pairIndex.homeAddr and senderTable.homeAddr give): their loads then
// overlap each other and the session's, in place of three misses one
// after the other.
//
// The tables change under their locks, which a prefetch does not take: a
// table publishes where its slots are (publishSlots), and a prefetch of a
// table replaced since, or of another key's slot, only loads a useless
// line. prefetchSlots neither faults nor reads Go memory, so it cannot
// race.

// slotsAt is where a table's slots are, as a plain address: it keeps no
// table alive.
type slotsAt struct {
	base uintptr // &slots[0]
	mask uint64  // len(slots)-1
}

// publishSlots makes at say where slots is (nil: no slots). The caller
// holds the table's lock and has just made slots the table's.
func publishSlots[T any](at *atomic.Pointer[slotsAt], slots []T) {
	if len(slots) == 0 {
		at.Store(nil)
		return
	}
	at.Store(&slotsAt{base: uintptr(unsafe.Pointer(&slots[0])), mask: uint64(len(slots) - 1)}) //nolint:gosec // G103: an address to prefetch, never a pointer again
}

// homeAddr returns the address of the slot of a table published in at
// where a linear probe for hash h starts, or 0 for no table; T is the
// slot's type.
func homeAddr[T any](at *atomic.Pointer[slotsAt], h uint64) uintptr {
	a := at.Load()
	if a == nil {
		return 0
	}
	var slot T
	return a.base + uintptr(h&a.mask)*unsafe.Sizeof(slot)
}
