package wire

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

func parse(t *testing.T, extra string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("public_url: https://sms.example.com\napi_keys: [{name: app, key: app-api-key-0000000001}]\n"+
		"providers: [{name: tw, type: twilio, auth_token: tok-0123456789}]\nnumbers: [{number: \"+14155550100\", provider: tw}]\n"+extra),
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOpenTellsTheGatewayItsStore: what Open hands the gateway for each
// store — limits shared only through Redis, Redis's clock, who bounds a
// sender's guesses, who recovers by itself — and metrics that register
// together without a clash.
func TestOpenTellsTheGatewayItsStore(t *testing.T) {
	cases := []struct {
		name, extra             string
		inMemory                bool
		shared, clock, selfHeal bool
		boundsGuesses           bool
		op                      string
	}{
		{name: "memory", inMemory: true, boundsGuesses: true, op: "wal_fsync"},
		{name: "wal", extra: "data_dir: " + t.TempDir() + "\n", boundsGuesses: true, op: "wal_fsync"},
		{name: "redis", extra: "store: redis\nredis_url: " + redistest.Start(t).URL() + "\nredis_prefix: app\n", shared: true, clock: true, selfHeal: true, op: "redis"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(parse(t, tc.extra), Options{InMemory: tc.inMemory})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Store.Close() })
			b := st.Backend
			if b.Store == nil || (b.Shared != nil) != tc.shared || (b.Now != nil) != tc.clock || b.SelfHealing != tc.selfHeal || b.BoundsSenderGuesses != tc.boundsGuesses {
				t.Fatalf("backend = %+v", b)
			}
			if (st.Memory != nil) == (st.Redis != nil) {
				t.Fatalf("memory %v, redis %v: want exactly one", st.Memory, st.Redis)
			}
			if tc.shared && b.Shared.Prefix != "app:limit:" {
				t.Errorf("limits prefix = %q", b.Shared.Prefix)
			}
			reg := prometheus.NewRegistry()
			for _, c := range b.Collectors {
				if err := reg.Register(c); err != nil {
					t.Fatal(err)
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, mf := range mfs {
				if mf.GetName() == "mogate_storage_errors_total" && mf.GetMetric()[0].GetLabel()[0].GetValue() == tc.op {
					found = true
				}
			}
			if !found {
				t.Errorf("mogate_storage_errors_total{op=%q} not present at 0", tc.op)
			}
		})
	}
}

// TestRedisTimerCountsOnlyStorageFailures: a missing key, a script's own
// error and a caller's cancelled context are answers, not storage
// failures; a connection error and a server that cannot serve writes are.
func TestRedisTimerCountsOnlyStorageFailures(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want float64
	}{
		{"answer", context.Background(), nil, 0},
		{"missing key", context.Background(), redis.Nil, 0},
		{"script error", context.Background(), redisErr("ERR bad input from a script"), 0},
		{"caller gone", cancelled, errors.New("context canceled"), 0},
		{"read-only replica", context.Background(), redisErr("READONLY You can't write against a read only replica."), 1},
		{"connection", context.Background(), errors.New("dial tcp: connection refused"), 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newStorageMetrics("redis")
			hook := redisTimer{m}.ProcessHook(func(context.Context, redis.Cmder) error { return tc.err })
			_ = hook(tc.ctx, redis.NewCmd(tc.ctx, "GET", "k"))
			reg := prometheus.NewRegistry()
			reg.MustRegister(m.collectors()...)
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				for _, x := range mf.GetMetric() {
					got[mf.GetName()] += x.GetCounter().GetValue() + float64(x.GetHistogram().GetSampleCount())
				}
			}
			if got["mogate_storage_errors_total"] != tc.want || got["mogate_storage_duration_seconds"] != 1 {
				t.Fatalf("errors %v (want %v), timed calls %v (want 1)", got["mogate_storage_errors_total"], tc.want, got["mogate_storage_duration_seconds"])
			}
		})
	}
}

// redisErr is a reply error of the server, as go-redis returns it.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}
