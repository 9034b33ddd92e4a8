//go:build race

package gateway

// raceEnabled: the race detector is on. Its sync.Pool drops a quarter of
// what is put back, so pooled objects are allocated again now and then.
const raceEnabled = true
