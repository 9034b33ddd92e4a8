package gateway

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// redisReplica is a gateway of configuration y on the Redis at url, on the
// real clock, whose outbox runs once started.
func redisReplica(t *testing.T, y, url string, opt OutboxOptions) (h *harness, start func()) {
	t.Helper()
	cfg := mustParse(t, y+"store: redis\nredis_url: "+url+"\n")
	h = &harness{t: t, logs: &syncBuffer{}, now: time.Now()}
	s, _, err := open(Options{Config: cfg, Logger: slog.New(slog.NewJSONHandler(h.logs, nil)), Outbox: opt}, false)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	h.s, h.h = s, s.Handler()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; _ = s.Close() })
	started := false
	return h, func() {
		if !started {
			started = true
			go func() { s.RunOutbox(ctx); close(done) }()
		}
	}
}

// TestRedisEventsOnlyFromReplicaThatKnowsKey: two replicas on one Redis,
// B without the API key shop (a rolling config change). B claims every
// event of shop first and records none of them delivered; A, which knows
// the key, delivers them all.
func TestRedisEventsOnlyFromReplicaThatKnowsKey(t *testing.T) {
	srv := redistest.Start(t)
	rcv := newReceiver(t)
	a, startA := redisReplica(t, shopHooked(rcv.srv.URL), srv.URL(), OutboxOptions{BaseDelay: 10 * time.Millisecond})
	b, startB := redisReplica(t, withoutShop(t), srv.URL(), OutboxOptions{BaseDelay: 10 * time.Millisecond, UnknownKeyRetry: 300 * time.Millisecond})
	// An outbox never started would leave its cleanup waiting.
	t.Cleanup(startA)
	t.Cleanup(startB)
	const n = 5
	var ids []string
	emit := func(from string) {
		v := a.mustCreate(`{"number": "` + from + `"}`)
		ids = append(ids, v["id"].(string))
		b.send(b.signed("twilio", adapters.Inbound{From: from, To: v["to"].(string), Text: v["code"].(string)}))
		if got := a.get(v["id"].(string)); got["status"] != "verified" {
			t.Fatalf("session of %s: %v", from, got)
		}
	}
	for i := range n {
		emit("+1415555013" + strconv.Itoa(i))
	}
	// Only B's outbox runs: its first claim takes all n events.
	startB()
	eventually(t, "B to hand every event back (or drop them)", func() bool {
		return metric(b, "mogate_events_unknown_key_total") >= n || metric(b, "mogate_events_delivered_total") > 0 || notifiedAll(a, ids)
	})
	if rcv.calls() != 0 || notifiedAll(a, ids) || metric(b, "mogate_events_delivered_total") != 0 {
		t.Fatalf("B, which does not know the key: %d calls, recorded delivered: %v", rcv.calls(), notifiedAll(a, ids))
	}
	startA()
	// A's claims do not trail B's in lockstep (B would take each event
	// again as it falls due, just before A): A gets them all.
	eventuallyWithin(t, 20*time.Second, "the first events delivered by A", func() bool { return notifiedAll(a, ids) })
	// More events while both run: whichever claims first, A delivers them.
	for i := range n {
		emit("+1415555014" + strconv.Itoa(i))
	}
	// A counts a delivery once its ack is recorded: the count may trail
	// what the store already says by a moment.
	eventuallyWithin(t, 30*time.Second, "every event delivered by A", func() bool {
		return notifiedAll(a, ids) && metric(a, "mogate_events_delivered_total") >= 2*n
	})
	seen := map[string]bool{}
	for _, g := range rcv.accepted() {
		verifyStandard(t, g)
		seen[g.header.Get("webhook-id")] = true
	}
	if len(seen) != 2*n || metric(a, "mogate_events_delivered_total") < 2*n {
		t.Fatalf("%d distinct events accepted, A counted %v delivered", len(seen), metric(a, "mogate_events_delivered_total"))
	}
	if metric(b, "mogate_events_delivered_total") != 0 || metric(b, "mogate_events_dead_total") != 0 || metric(a, "mogate_events_dead_total") != 0 {
		t.Fatal("B recorded an event delivered, or one died")
	}
}

// notifiedAll reports whether every session of ids is recorded delivered.
func notifiedAll(h *harness, ids []string) bool {
	for _, id := range ids {
		s, err := h.s.store.Get(context.Background(), id)
		if err != nil || s.Notified != matcher.Delivered {
			return false
		}
	}
	return true
}
