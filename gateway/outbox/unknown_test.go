package outbox

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeStore holds events in claim order; only the event methods work.
type fakeStore struct {
	matcher.Store
	mu     sync.Mutex // acked: the outbox acks events side by side
	now    time.Time
	evs    []*fakeEvent
	acked  map[string]bool // id: dead
	claims int
}

type fakeEvent struct {
	ev    matcher.Event
	until time.Time
}

func (f *fakeStore) ClaimEvents(_ context.Context, lease time.Duration, limit int) ([]matcher.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims++
	var out []matcher.Event
	for _, e := range f.evs {
		if _, done := f.acked[e.ev.ID]; !done && len(out) < limit && !f.now.Before(e.until) {
			e.until = f.now.Add(lease)
			out = append(out, e.ev)
		}
	}
	return out, nil
}

func (f *fakeStore) AckEvent(_ context.Context, ev matcher.Event, dead bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acked[ev.ID] = dead
	return nil
}

func (f *fakeStore) DeferEvent(_ context.Context, ev matcher.Event, until time.Time) error {
	for _, e := range f.evs {
		if e.ev.ID == ev.ID {
			e.until, e.ev.Attempts = until, ev.Attempts
		}
	}
	return nil
}

func (f *fakeStore) add(key string, at time.Time, attempts int) string {
	id := "evt_" + strconv.Itoa(len(f.evs))
	s := &matcher.Session{ID: "ver_" + id, Key: key, Status: matcher.Verified}
	f.evs = append(f.evs, &fakeEvent{ev: matcher.Event{ID: id, Key: key, Session: s, At: at, Attempts: attempts}})
	return id
}

func (f *fakeStore) find(id string) *fakeEvent {
	for _, e := range f.evs {
		if e.ev.ID == id {
			return e
		}
	}
	return nil
}

// TestUnknownKeyHandedBack: an event whose API key this process does not
// know is never acked before its window ends: it is handed back for
// UnknownKeyRetry (no later than its end), its attempts untouched; at the
// end of its window it is dead. A backlog of such events does not keep one
// claim from reaching the events behind it.
func TestUnknownKeyHandedBack(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeStore{now: now, acked: map[string]bool{}}
	const retry, maxAge = 30 * time.Second, 24 * time.Hour
	fresh := f.add("gone", now.Add(-time.Minute), 3)
	ending := f.add("gone", now.Add(-maxAge+10*time.Second), 0)
	over := f.add("gone", now.Add(-maxAge), 0)
	for range 3 * claimBatch {
		f.add("gone", now, 0)
	}
	known := f.add("shop", now, 0) // a known key without a destination: acked at once
	reg := prometheus.NewRegistry()
	o := New(Options{Store: f, Registerer: reg, Keys: []config.APIKey{{Name: "shop"}}, Now: func() time.Time { return now },
		Tuning: Tuning{UnknownKeyRetry: retry, MaxAge: maxAge}})
	o.claim(context.Background())

	if len(f.acked) != 2 {
		t.Fatalf("%d events acked, want two: the known key's and the one at the end of its window", len(f.acked))
	}
	if dead, ok := f.acked[known]; !ok || dead {
		t.Fatalf("the known key's event behind the backlog: acked %v dead %v after %d claims", ok, dead, f.claims)
	}
	if dead, ok := f.acked[over]; !ok || !dead {
		t.Fatalf("the event at the end of its window: acked %v dead %v", ok, dead)
	}
	if n := counter(t, reg, "mogate_events_dead_total"); n != 1 {
		t.Fatalf("mogate_events_dead_total = %v", n)
	}
	if e := f.find(fresh); !e.until.Equal(now.Add(retry)) || e.ev.Attempts != 3 {
		t.Fatalf("handed back until %v with %d attempts, want %v and 3", e.until, e.ev.Attempts, now.Add(retry))
	}
	if e := f.find(ending); !e.until.Equal(now.Add(10 * time.Second)) {
		t.Fatalf("an event 10s from its end handed back until %v", e.until)
	}
	if n := counter(t, reg, "mogate_events_unknown_key_total"); n != 3*claimBatch+2 {
		t.Fatalf("mogate_events_unknown_key_total = %v", n)
	}
}

// counter is the value of the counter name gathered from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
