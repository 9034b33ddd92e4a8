package gateway

import (
	"context"
	"fmt"

	"github.com/mogate/mogate/cmd/mogate/wire"
)

// open builds a server the way cmd/mogate does: wire.Open opens the store
// o.Config names (inMemory: store: memory without its journal), New takes
// it. The wire.Store is the concrete store behind the server, for checks.
func open(o Options, inMemory bool) (*Server, *wire.Store, error) {
	st, err := wire.Open(o.Config, wire.Options{Logger: o.Logger, Now: o.Now, InMemory: inMemory, EventMaxAge: o.Outbox.WithDefaults().MaxAge})
	if err != nil {
		return nil, nil, err
	}
	o.Backend = st.Backend
	s, err := New(o)
	if err != nil {
		_ = st.Store.Close()
		return nil, nil, err
	}
	return s, st, nil
}

// runOutbox runs the server's outbox until the test ends: final statuses
// reach metrics, pool health and the lifecycle log through the events it
// claims (Server.onClaim), on every store.
func (h *harness) runOutbox() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.s.RunOutbox(ctx); close(done) }()
	h.t.Cleanup(func() { cancel(); <-done })
}

// awaitFinals waits until the server has observed n final statuses.
func (h *harness) awaitFinals(n int) {
	h.t.Helper()
	eventually(h.t, fmt.Sprintf("%d final statuses observed", n), func() bool { return h.finals() >= n })
}

// finals is how many final statuses the server has counted.
func (h *harness) finals() int {
	mfs, err := h.s.metrics.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "mogate_verifications_finished_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int(n)
}
