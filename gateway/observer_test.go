package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestFinalStatusObservedOnce: on every store, a final status reaches the
// metrics, pool health and the lifecycle log through its event, and an
// event claimed again after its lease ran out (or claimed by two
// replicas) counts once.
func TestFinalStatusObservedOnce(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		hs := st.replicas(t, testYAML)
		h := hs[0]
		v := h.mustCreate(`{"number": "+14155550123"}`)
		id := v["id"].(string)
		if w := h.do("POST", "/v1/verifications/"+id+"/cancel", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("cancel = %d %s", w.Code, w.Body)
		}
		ctx := context.Background()
		claim := func() []matcher.Event {
			evs, err := h.s.store.ClaimEvents(ctx, 50*time.Millisecond, 10)
			if err != nil {
				t.Fatal(err)
			}
			return evs
		}
		first := claim()
		if len(first) != 1 || first[0].Session == nil || first[0].Session.ID != id {
			t.Fatalf("claimed %+v, want the cancelled event of %s", first, id)
		}
		for _, r := range hs {
			r.s.onClaim(r.clock)(first)
		}
		// The lease runs out undelivered: the event is claimable again.
		h.advance(time.Minute) // the memory store's clock; Redis keeps its own
		var again []matcher.Event
		eventually(t, "the event claimable again", func() bool { again = claim(); return len(again) == 1 })
		if again[0].ID != first[0].ID || again[0].Attempts != 0 {
			t.Fatalf("claimed again: %+v", again[0])
		}
		for _, r := range hs {
			r.s.onClaim(r.clock)(again)
		}
		// Counted once by the deployment: on one of the replicas.
		finished, lines := 0, 0
		for _, r := range hs {
			finished += r.finals()
			for _, l := range logLines(t, r.logs.String(), "verification cancelled") {
				if l["id"] == id {
					lines++
				}
			}
		}
		if finished != 1 || lines != 1 {
			t.Errorf("the event claimed %d times counted %d times, logged %d times; want 1 and 1", 2*len(hs), finished, lines)
		}
		scrape := h.do("GET", "/metrics", "", nil, nil).Body.String()
		for _, want := range []string{
			`mogate_verifications_finished_total{channel="sms",status="cancelled"} 1`,
			`mogate_number_verifications_total{channel="sms",number="+14155550100",provider="twilio",step="cancelled"} 1`,
		} {
			if !strings.Contains(scrape, want) {
				t.Errorf("scrape lacks %s", want)
			}
		}
	})
}

// TestFinalObserverBoundedByTime: the guard forgets an id only once its
// event can no longer be claimed (maxAge after it was observed), never
// because many other ids came after it.
func TestFinalObserverBoundedByTime(t *testing.T) {
	f := newFinalObserver(time.Hour)
	t0 := time.Unix(1_700_000_000, 0)
	if !f.firstAt("evt_a", t0) {
		t.Fatal("the first claim was not observed")
	}
	for i := range 100_000 {
		if !f.firstAt(fmt.Sprintf("evt_%d", i), t0.Add(time.Second)) {
			t.Fatalf("evt_%d dropped on its first claim", i)
		}
	}
	if f.firstAt("evt_a", t0.Add(time.Hour-time.Nanosecond)) {
		t.Fatal("evt_a counted twice after a burst of other events, within its lifetime")
	}
	if !f.firstAt("evt_a", t0.Add(time.Hour)) {
		t.Fatal("evt_a still remembered when it can no longer be claimed")
	}
	if f.firstAt("evt_a", t0.Add(time.Hour)) {
		t.Fatal("evt_a, observed again, counted twice")
	}
	f.firstAt("evt_b", t0.Add(time.Hour+time.Second))
	if n := f.held(); n != 2 {
		t.Fatalf("held %d ids after every other one's time passed, want 2 (evt_a, evt_b)", n)
	}
}

// TestFinalObserverForgetsAcked: the ids of acked events are dropped, and
// their entries too once they are half of the guard's, so that a busy
// gateway's guard holds the events on their way, not a day of them (it
// held every id for the outbox's MaxAge: 24 h). The ids not acked are
// still remembered until their time.
func TestFinalObserverForgetsAcked(t *testing.T) {
	f := newFinalObserver(time.Hour)
	t0 := time.Unix(1_700_000_000, 0)
	var acked []string
	for i := range 10_000 {
		id := fmt.Sprintf("evt_%d", i)
		if !f.firstAt(id, t0) {
			t.Fatalf("%s dropped on its first claim", id)
		}
		if i != 7 {
			acked = append(acked, id)
		}
	}
	f.forget(acked)
	if n := f.held(); n != 1 {
		t.Fatalf("held %d ids after all but one were acked, want 1", n)
	}
	if n := len(f.order) - f.head; n > 1 {
		t.Errorf("%d entries kept after all but one were acked, want 1", n)
	}
	if f.firstAt("evt_7", t0.Add(time.Minute)) {
		t.Error("the event not acked was counted twice")
	}
	if !f.firstAt("evt_8", t0.Add(time.Minute)) {
		t.Error("an acked id claimed again (the store never hands one out) was not let through")
	}
	if !f.firstAt("evt_7", t0.Add(time.Hour)) {
		t.Error("the event not acked is still remembered when it can no longer be claimed")
	}
}

// TestGuardForgetsDeliveredEvents: on the memory store, the ids of the
// events the outbox acked leave the guard at its next claim: a gateway
// that verified and cancelled sessions holds none of their ids (it held
// each for 24 h), and still counts each final status once.
func TestGuardForgetsDeliveredEvents(t *testing.T) {
	h := newHarness(t, testYAML)
	guard, ok := h.s.finals.(*finalObserver)
	if !ok {
		t.Skipf("the guard is %T", h.s.finals)
	}
	h.runOutbox()
	h.verify(h.mustCreate(`{"number": "+14155550123"}`))
	h.awaitFinals(1)
	for i := range 3 {
		v := h.mustCreate(`{"number": "+1415555012` + strconv.Itoa(4+i) + `"}`)
		if w := h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil); w.Code != 200 {
			t.Fatalf("cancel = %d %s", w.Code, w.Body)
		}
		h.awaitFinals(2 + i)
	}
	// Each claim passed the ids acked before it: at most the last
	// event's is left.
	eventually(t, "the acked events' ids forgotten", func() bool { return guard.held() <= 1 })
	if n := h.finals(); n != 4 {
		t.Fatalf("%d final statuses counted, want 4", n)
	}
}
