package outbox

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mogate/mogate/cmd/mogate/wire"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// whsec is the test keys' webhook secret.
const whsec = "whsec_c2hvcC1TRUNSRVRWQUxVRS13aA=="

// testStore is one of the stores the outbox's tests run on, opened as the
// binary opens it (wire.Open): memory, memory journaled (WAL), Redis.
type testStore struct {
	name     string
	redisURL string // a private redis-server, for store: redis
}

// rigs numbers the rigs, each of which has its own redis_prefix.
var rigs atomic.Int64

// config is the configuration that opens a store of its own for t: a
// fresh data_dir, or a fresh prefix on the Redis.
func (st testStore) config(t *testing.T) string {
	switch st.name {
	case "wal":
		return "data_dir: " + t.TempDir() + "\n"
	case "redis":
		return "store: redis\nredis_url: " + st.redisURL + "\nredis_prefix: rig" + strconv.FormatInt(rigs.Add(1), 10) + "\n"
	}
	return ""
}

// forEachStore runs fn once per store, each in its own subtest; each rig
// fn makes has a store of its own (one redis-server per store: redis
// subtest, a prefix per rig).
func forEachStore(t *testing.T, fn func(t *testing.T, st testStore)) {
	t.Helper()
	for _, name := range []string{"memory", "wal", "redis"} {
		t.Run(name, func(t *testing.T) {
			st := testStore{name: name}
			if name == "redis" {
				st.redisURL = redistest.Start(t).URL()
			}
			fn(t, st)
		})
	}
}

// rig is an outbox running on a store, with the API keys of its
// configuration, until the test ends.
type rig struct {
	t     *testing.T
	store matcher.Store
	o     *Outbox
	reg   *prometheus.Registry // the outbox's metrics
	logs  *syncBuffer
	n     int // sessions made so far: each its own sender number
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// newRig opens st with apiKeys (YAML flow entries of api_keys) and runs an
// outbox on it, allowed private destinations (the test's receivers).
func newRig(t *testing.T, st testStore, apiKeys string, tuning Tuning) *rig {
	t.Helper()
	y := "public_url: https://sms.example.com\napi_keys: [" + apiKeys + "]\n" +
		"providers: [{name: tw, type: twilio, auth_token: tok-0123456789}]\n" +
		"numbers: [{number: \"+14155550100\", provider: tw}]\n" +
		"events: {allow_private_destinations: true}\n" + st.config(t)
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wire.Open(cfg, wire.Options{InMemory: st.name == "memory", EventMaxAge: tuning.WithDefaults().MaxAge})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Store.Close() })
	r := &rig{t: t, store: ws.Store, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	r.o = New(Options{
		Store: ws.Store, Keys: cfg.APIKeys, AllowPrivate: true, Now: ws.Now, Registerer: r.reg,
		Logger: slog.New(slog.NewJSONHandler(r.logs, nil)),
		Data:   func(s matcher.Session) any { return map[string]any{"id": s.ID, "status": s.Status.String()} },
		Tuning: tuning,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done }) // before the store closes
	return r
}

// cancelled makes a session of key, its event going to callback (its
// key's webhook_url when empty), and cancels it: its event is due now.
func (r *rig) cancelled(key, callback string) string {
	r.t.Helper()
	ctx := context.Background()
	r.n++
	s, _, err := r.store.Create(ctx, matcher.CreateRequest{
		Key: key, Number: "+1415555" + strconv.Itoa(1000+r.n), To: "+14155550100", TTL: time.Hour, Callback: callback,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.Cancel(ctx, s.ID); err != nil {
		r.t.Fatal(err)
	}
	return s.ID
}

// notified is how far the event of session id went.
func (r *rig) notified(id string) matcher.Notified {
	r.t.Helper()
	s, err := r.store.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return s.Notified
}

// eventually polls cond until it holds, failing the test after limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is an app's endpoint answering the statuses of its script in
// turn, then 200.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	script []int
	got    []int // the statuses answered
}

func newReceiver(t *testing.T, script ...int) *receiver {
	t.Helper()
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		r.got = append(r.got, status)
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) calls() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.got) }

// accepted is how many events r accepted.
func (r *receiver) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.got {
		if s == http.StatusOK {
			n++
		}
	}
	return n
}
