package outbox

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestDeadEndpointDoesNotDelayOthers: events queued for an endpoint that
// fails open its breaker; another endpoint of the same key still gets its
// event, and the open breaker lets no more calls through. On every store.
func TestDeadEndpointDoesNotDelayOthers(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		dead := newReceiver(t, slices.Repeat([]int{500}, 20)...)
		good := newReceiver(t)
		r := newRig(t, st, "{name: shop, key: shop-api-key-0000000001, webhook_secret: "+whsec+", webhook_url: "+good.srv.URL+"}",
			Tuning{BaseDelay: 10 * time.Millisecond, Workers: 2})
		for range 10 {
			r.cancelled("shop", dead.srv.URL)
		}
		eventually(t, 10*time.Second, "the dead host's breaker to open", func() bool { return dead.calls() >= 5 })
		r.cancelled("shop", "")
		eventually(t, 10*time.Second, "the healthy receiver's event", func() bool { return good.accepted() == 1 })
		before := dead.calls()
		time.Sleep(100 * time.Millisecond) // a window in which an open breaker lets nothing through
		if after := dead.calls(); after > before+1 {
			t.Fatalf("the open breaker still let %d calls through", after-before)
		}
	})
}

// TestEventDeadAfterMaxAge: an event never accepted is given up MaxAge
// after its status: recorded dead, counted and logged. On every store.
func TestEventDeadAfterMaxAge(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		rcv := newReceiver(t, slices.Repeat([]int{500}, 25)...)
		r := newRig(t, st, "{name: shop, key: shop-api-key-0000000001, webhook_secret: "+whsec+", webhook_url: "+rcv.srv.URL+"}",
			Tuning{BaseDelay: 5 * time.Millisecond, MaxAge: 150 * time.Millisecond})
		id := r.cancelled("shop", "")
		eventually(t, 10*time.Second, "the event to go dead", func() bool { return r.notified(id) == matcher.Dead })
		if n := counter(t, r.reg, "mogate_events_dead_total"); n != 1 || !strings.Contains(r.logs.String(), "event dead") {
			t.Fatalf("dead events counted %v; logs:\n%s", n, r.logs)
		}
	})
}
