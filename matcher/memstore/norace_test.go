//go:build !race

package memstore

// raceEnabled: the race detector is on (race_test.go).
const raceEnabled = false
