package matcher_test

import (
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/storetest"
)

func storeOptions(clock func() time.Time) matcher.Options {
	return matcher.Options{
		Now: clock, MaxAttempts: storetest.MaxAttempts, CodeLength: storetest.CodeLength,
		Retention: storetest.Retention, CaptureGuessesPerHour: storetest.CaptureGuessesPerHour,
	}
}

// TestStoreMemory runs the store suite on the in-memory matcher.
func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		return matcher.New(storeOptions(clock)).Store()
	})
}

// TestStoreWAL runs the store suite on the matcher with its write-ahead log.
func TestStoreWAL(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) matcher.Store {
		m, err := matcher.Open(t.TempDir(), storeOptions(clock), matcher.DurableOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return m.Store()
	})
}
