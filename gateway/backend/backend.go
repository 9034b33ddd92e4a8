// Package backend is what the gateway runs on besides its configuration:
// the session store, opened by the composition root (package wire, called
// by cmd/mogate), and what comes with that store — the shared Redis for
// limits that hold across replicas, the store's clock, its own metrics.
// The gateway reads a Backend; it never opens, names or type-asserts a
// store. This package holds only the hand-over type, so that the gateway
// depends on no store package.
package backend

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
)

// Backend is an opened store and what the gateway needs to know of it.
type Backend struct {
	// Store is where sessions and events live. Required.
	Store matcher.Store
	// Shared, when set, is where the gateway keeps its rate limits and
	// stream slots so that they hold for every replica (store: redis).
	// Nil: they are counted in this process (one replica).
	Shared *Shared
	// Now is the store's clock (store: redis follows Redis's TIME); the
	// adapters and the outbox use it. Nil: the gateway's own clock.
	Now func() time.Time
	// Collectors are the store's own metrics (latency, errors, clock skew,
	// unsafe nodes, remembered ids): the gateway registers them beside
	// its own.
	Collectors []prometheus.Collector
	// SelfHealing says the store recovers by itself once its server answers
	// again (Redis, Sentinel, Cluster): /readyz says so while it fails.
	// False: a failed store stays failed until a restart (the journal).
	SelfHealing bool
	// BoundsSenderGuesses says the store itself bounds a sender's capture
	// guesses across receiving numbers (the memory store). False: the
	// gateway charges that budget before each match.
	BoundsSenderGuesses bool
}

// Shared is a Redis the gateway's limits live in, under Prefix (the
// deployment's key prefix for limits), beside the store's own keys.
type Shared struct {
	Client redis.UniversalClient
	Prefix string
}

// Budget bounds the storage work of one request, and each call of a
// store served over the network: a stalled Redis is answered 503 within
// it, well inside the 5 s a provider or client waits.
const Budget = 4 * time.Second
