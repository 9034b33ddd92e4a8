package memstore

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

func undeliveredIDs(t *testing.T, m *Store) []string {
	t.Helper()
	var ids []string
	for id := range due(t, m) {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// TestEventsRecoverUnderLoad: events made, claimed, deferred and acked
// while snapshots are taken; after a crash the same events are undelivered
// (state does not look at the event table) and the state is equal.
func TestEventsRecoverUnderLoad(t *testing.T) {
	dir := t.TempDir()
	m, err := Open(dir, Options{Retention: time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := fmt.Sprintf("+1415%03d%04d", 200+g, i%10000)
				s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from, To: to, TTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				if i%4 == 0 {
					_, err = m.cancel(s.ID)
				} else {
					_, err = m.ingestOnce(matcher.Message{Provider: "p", MessageID: s.ID, From: from, To: to, Text: s.Code}, matcher.IngestOptions{})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // a dispatcher that acks most, defers some, leaves leases
		defer wg.Done()
		n := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			evs, err := m.ClaimEvents(bg, time.Hour, 20)
			if err != nil {
				t.Error(err)
				return
			}
			for _, ev := range evs {
				n++
				switch n % 4 {
				case 0:
					ev.Attempts++
					_ = m.DeferEvent(bg, ev, time.Now())
				case 1: // left leased: undelivered, not claimable for an hour
				default:
					if err := m.AckEvent(bg, ev, false); err != nil {
						t.Error(err)
					}
				}
			}
		}
	}()
	for range 6 {
		time.Sleep(150 * time.Millisecond)
		if err := m.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	before := state(m)
	und := m.Undelivered()
	// every undelivered event, leased or not
	var ids []string
	m.events.mu.Lock()
	for e := range m.events.sessions.all() {
		ids = append(ids, matcher.EventID(idString(e.prefix, &e.s.id), e.s.status))
	}
	m.events.mu.Unlock()
	slices.Sort(ids)
	m2, err := Open(dir, Options{Retention: time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if after := state(m2); after != before {
		t.Fatalf("state differs:\n%s", diffLines(before, after))
	}
	got := undeliveredIDs(t, m2)
	if m2.Undelivered() != und || !slices.Equal(got, ids) {
		t.Fatalf("undelivered after crash: %d (%d claimable), before %d", m2.Undelivered(), len(got), und)
	}
	t.Logf("%d undelivered carried over", und)
}
