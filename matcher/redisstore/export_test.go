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

// CheckNodes runs the settings check that Run repeats every minute.
func (s *Store) CheckNodes(ctx context.Context) error { return s.checkNodes(ctx) }
