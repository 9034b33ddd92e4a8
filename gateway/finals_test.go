package gateway

import "context"

// observeFinals runs the outbox, which observes final statuses as it claims
// their events (metrics, pool health, lifecycle log), until it has claimed
// every event of the memory store: the test keys have no webhook, so each
// is acked as it is claimed.
func (h *harness) observeFinals() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.s.RunOutbox(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(h.t, "the outbox to claim every event", func() bool { return h.s.m.Undelivered() == 0 })
}
