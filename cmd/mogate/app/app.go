// Package app builds the server the binary runs: wire.Open opens the store
// the configuration names, gateway.New serves on it. cmd/mogate and the
// tests outside package gateway build their servers here; the gateway's
// own tests make the same two calls (they cannot import this package,
// which imports theirs).
package app

import (
	"github.com/mogate/mogate/cmd/mogate/wire"
	"github.com/mogate/mogate/gateway"
)

// New opens the store o.Config names and builds a server on it; inMemory
// keeps a store: memory without its journal (tests). The wire.Store is the
// store behind the server: Server.Close closes it.
func New(o gateway.Options, inMemory bool) (*gateway.Server, *wire.Store, error) {
	st, err := wire.Open(o.Config, wire.Options{Logger: o.Logger, Now: o.Now, InMemory: inMemory, EventMaxAge: o.Outbox.WithDefaults().MaxAge})
	if err != nil {
		return nil, nil, err
	}
	o.Backend = st.Backend
	s, err := gateway.New(o)
	if err != nil {
		_ = st.Store.Close()
		return nil, nil, err
	}
	return s, st, nil
}
