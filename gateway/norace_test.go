//go:build !race

package gateway

// raceEnabled: the race detector is on (race_test.go).
const raceEnabled = false
