package gateway

import (
	"context"
	"testing"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// testStore is one of the stores the gateway's tests run on, as the
// binary opens it (wire.Open): memory without a journal, memory journaled
// under a data_dir (the WAL), and Redis.
type testStore struct {
	name string
	// extra is the configuration that selects the store, appended to a
	// test's YAML; every replica of a test shares it.
	extra string
	// shared: replicas share sessions and limits (Redis), so a test runs
	// two; otherwise one process holds the store and a test runs one.
	shared bool
	memory bool // journal-less: wire.Options.InMemory
}

// memoryStore is the store of the tests that run on one store only.
var memoryStore = testStore{name: "memory", memory: true}

// forEachStore runs fn once per store, each in its own subtest. A Redis
// store is a private redis-server started for the subtest.
func forEachStore(t *testing.T, fn func(t *testing.T, st testStore)) {
	t.Helper()
	for _, name := range []string{"memory", "wal", "redis"} {
		t.Run(name, func(t *testing.T) {
			st := testStore{name: name}
			switch name {
			case "memory":
				st.memory = true
			case "wal":
				st.extra = "data_dir: " + t.TempDir() + "\n"
			case "redis":
				st.extra = "store: redis\nredis_url: " + redistest.Start(t).URL() + "\n"
				st.shared = true
			}
			fn(t, st)
		})
	}
}

// harness opens one gateway on the store with configuration yaml, closed
// when the test ends.
func (st testStore) harness(t *testing.T, yaml string) *harness {
	t.Helper()
	if st.memory {
		return newHarness(t, yaml)
	}
	return storeHarness(t, yaml+st.extra)
}

// replicas opens the gateways a test of a deployment runs: two on a shared
// store, one otherwise.
func (st testStore) replicas(t *testing.T, yaml string) []*harness {
	t.Helper()
	hs := []*harness{st.harness(t, yaml)}
	if st.shared {
		hs = append(hs, st.harness(t, yaml))
	}
	return hs
}

// session reads session id from the server's store, whichever it is.
func (h *harness) session(id string) matcher.Session {
	h.t.Helper()
	s, err := h.s.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("session %s: %v", id, err)
	}
	return s
}
