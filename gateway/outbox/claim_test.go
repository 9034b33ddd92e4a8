package outbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
)

// durableAcks is a fakeStore whose acks return, as a durable store's do,
// only once they are durable: here once want acks are in flight together,
// as a log sync that they all wait for would make them, or when the test
// gives up.
type durableAcks struct {
	*fakeStore
	want           int
	mu             sync.Mutex
	inflight, most int
	all, giveUp    chan struct{}
}

func (d *durableAcks) AckEvent(ctx context.Context, ev matcher.Event, dead bool) error {
	d.mu.Lock()
	d.inflight++
	d.most = max(d.most, d.inflight)
	if d.inflight == d.want {
		close(d.all)
	}
	d.mu.Unlock()
	select {
	case <-d.all:
	case <-d.giveUp:
	}
	d.mu.Lock()
	d.inflight--
	d.mu.Unlock()
	return d.fakeStore.AckEvent(ctx, ev, dead)
}

// TestUnsentEventsAckedTogether: the events of a claim that have nowhere
// to go (no callback_url, no webhook_url) are acked side by side, so that
// they share one sync of the store: one after the other, each waited for a
// sync of its own, and the outbox of a busy gateway fell behind its
// verifications without end.
func TestUnsentEventsAckedTogether(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	f := &fakeStore{now: now, acked: map[string]bool{}}
	const n = 64
	for range n {
		f.add("shop", now, 0)
	}
	d := &durableAcks{fakeStore: f, want: n, all: make(chan struct{}), giveUp: make(chan struct{})}
	o := New(Options{Store: d, Keys: []config.APIKey{{Name: "shop"}}, Now: func() time.Time { return now }})
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.claimOnce(context.Background())
	}()
	select {
	case <-d.all:
	case <-time.After(10 * time.Second): // never, when the acks wait for each other
		d.mu.Lock()
		t.Errorf("the %d events without a destination were acked one at a time: at most %d in flight together", n, d.most)
		d.mu.Unlock()
		close(d.giveUp)
	}
	<-done
	if len(f.acked) != n {
		t.Fatalf("%d of %d events acked", len(f.acked), n)
	}
	for id, dead := range f.acked {
		if dead {
			t.Fatalf("event %s acked dead", id)
		}
	}
}
