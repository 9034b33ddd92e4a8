package redisstore

import (
	"context"
	"time"
)

// AckBatch is how many events one ack call takes.
const AckBatch = ackBatch

// Sweep runs one expiry and retention pass, for tests.
func (s *Store) Sweep(ctx context.Context) error { return s.sweep(ctx) }

// SessionsKey is the hash of the sessions on receiving number to.
func SessionsKey(to string) string { return keyspace{DefaultPrefix}.key(tagOf(to), keySessions) }

// SetWaitFallback changes how often Wait re-reads without a wakeup.
func SetWaitFallback(d time.Duration) (restore func()) {
	old := waitFallback
	waitFallback = d
	return func() { waitFallback = old }
}

// CheckNodes runs the settings check that Run repeats every minute.
func (s *Store) CheckNodes(ctx context.Context) error { return s.checkNodes(ctx) }

// Library returns the name and code of the function library, and of the
// library body would build.
func Library(body string) (name, code string) {
	if body == "" {
		return libraryName, library
	}
	return buildLibrary(body)
}

// LibraryBody is library.lua.
var LibraryBody = libraryBody

// SetClockSyncEvery changes how often Run samples Redis's TIME.
func SetClockSyncEvery(d time.Duration) (restore func()) {
	old := clockSyncEvery
	clockSyncEvery = d
	return func() { clockSyncEvery = old }
}

// Watching is how many Wait calls listen for the wakeups of session id.
func (s *Store) Watching(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters[id])
}

// QueuedCalls is how many function calls wait for a batch to be sent.
func (s *Store) QueuedCalls() int {
	if s.pipe == nil {
		return 0
	}
	s.pipe.mu.Lock()
	defer s.pipe.mu.Unlock()
	return len(s.pipe.queue)
}

// MaxBatchesInFlight is how many batches of calls are sent at once.
const MaxBatchesInFlight = maxLeaders

// StaleQueuedCalls is how many calls the queue's array still points to
// past its length.
func (s *Store) StaleQueuedCalls() int {
	if s.pipe == nil {
		return 0
	}
	s.pipe.mu.Lock()
	defer s.pipe.mu.Unlock()
	n := 0
	for _, c := range s.pipe.queue[len(s.pipe.queue):cap(s.pipe.queue)] {
		if c != nil {
			n++
		}
	}
	return n
}
