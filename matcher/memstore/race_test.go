//go:build race

package memstore

// raceEnabled: the race detector is on, and a read faults in the shadow
// memory of what it reads.
const raceEnabled = true
