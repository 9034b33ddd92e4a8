package memstore_test

import (
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/memstore"
	"github.com/mogate/mogate/matcher/storetest"
)

func storeOptions(clock func() time.Time) memstore.Options {
	return memstore.Options{
		Now: clock, MaxAttempts: storetest.MaxAttempts, CodeLength: storetest.CodeLength,
		Retention: storetest.Retention, CaptureGuessesPerHour: storetest.CaptureGuessesPerHour,
	}
}

// TestStoreMemory runs the store suite on the in-memory matcher.
func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		return memstore.New(storeOptions(clock))
	})
}

// TestStoreWAL runs the store suite on the matcher with its write-ahead log.
func TestStoreWAL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		m, err := memstore.Open(t.TempDir(), storeOptions(clock), memstore.DurableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}
