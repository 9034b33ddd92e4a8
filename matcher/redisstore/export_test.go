package redisstore

import (
	"context"
	"time"
)

// Sweep runs one expiry and retention pass, for tests.
func (s *Store) Sweep(ctx context.Context) error { return s.sweep(ctx) }

// SessionsKey is the hash of the sessions on receiving number to.
func SessionsKey(to string) string { return key(tagOf(to), "s") }

// SetWaitFallback changes how often Wait re-reads without a wakeup.
func SetWaitFallback(d time.Duration) (restore func()) {
	old := waitFallback
	waitFallback = d
	return func() { waitFallback = old }
}

// SetClockSyncEvery changes how often Run samples Redis's TIME.
func SetClockSyncEvery(d time.Duration) (restore func()) {
	old := clockSyncEvery
	clockSyncEvery = d
	return func() { clockSyncEvery = old }
}
