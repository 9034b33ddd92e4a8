package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestBenchConfigDefaultLimits: the load runs' gateways have a real
// deployment's limits, so the webhook rows include what they cost.
func TestBenchConfigDefaultLimits(t *testing.T) {
	if got, want := benchConfig("https://mogate.bench.invalid").Limits, config.Default().Limits; got != want {
		t.Fatalf("load run limits = %+v, want the defaults %+v", got, want)
	}
}

// TestBenchRedisRows runs the Redis parts of `mogate bench` briefly on a
// private Redis: every row is printed and every answered webhook verified
// its session. It checks what is measured, never how fast.
func TestBenchRedisRows(t *testing.T) {
	srv := redistest.Start(t)
	withReplica := redistest.Start(t)
	redistest.StartReplica(t, withReplica)
	waitRows := []string{"Redis with a replica, no WAIT", "WAIT 1 replica (1s timeout)", ", 0 non-2xx", "ratio WAIT / no WAIT", "≥ 70%"}
	for _, tc := range []struct {
		name   string
		args   []string
		rows   []string
		notRun bool
	}{
		{"store", []string{"--only", "store", "--redis", srv.Addr()}, []string{"create+verify, Redis store, full semantics", "ratio full semantics / Lua baseline",
			"Redis CPU per pair, full store vs baseline", "bench process CPU per pair (client side), full store vs baseline", "| ≤ 60 µs", " commands)"}, false},
		{"replicas", []string{"--only", "replicas", "--redis", srv.Addr()}, []string{"Redis SET alone", "Redis store, 1 replica", "p99 ≤ 20 ms at 8 conns",
			"Redis CPU per webhook (store: redis), its event delivered", "| ≤ 40 µs", "process CPU per webhook", "3 replicas round-robin",
			"the webhook run's events on Redis, undelivered after it", "| delivered within"}, false},
		// The user's Redis, with a replica of its own.
		{"wait", []string{"--only", "wait", "--redis", withReplica.Addr()}, waitRows, false},
		// A private primary, and a replica of it started by bench.
		{"wait private", []string{"--only", "wait"}, waitRows, false},
		{"wait without replica", []string{"--only", "wait", "--redis", srv.Addr()}, []string{"WAIT 1 replica", "not run: the Redis of --redis has no replica connected"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, log bytes.Buffer
			err := bench(append(tc.args, "--duration", "300ms", "--conns", "8"), &out, &log)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, log.String())
			}
			for _, r := range tc.rows {
				if !strings.Contains(out.String(), r) {
					t.Errorf("no row %q in\n%s", r, out.String())
				}
			}
			if strings.Contains(out.String(), "errors") || strings.Contains(out.String(), "not run") != tc.notRun {
				t.Errorf("failed requests or runs:\n%s", out.String())
			}
			// Each webhook verifies its sender's own session: with the
			// default limits it charges no budget (no rate-limit script).
			for line := range strings.Lines(log.String()) {
				if strings.Contains(line, "per webhook:") && strings.Contains(line, "evalsha") {
					t.Errorf("a webhook ran a budget script: %s", line)
				}
			}
		})
	}
}

// TestBenchGoRows: the Go benchmarks' rows carry their targets, and
// a lookup with more than one allocation misses whatever its time.
func TestBenchGoRows(t *testing.T) {
	f := filepath.Join(t.TempDir(), "gobench.txt")
	out := `BenchmarkLookupConsume/pending=10000-2   	 1000000	       450 ns/op	      16 B/op	       1 allocs/op
BenchmarkLookupConsume/pending=1000000-2 	 1000000	       480 ns/op	      32 B/op	       2 allocs/op
BenchmarkRecovery1M/pending-2   	       1	1370000000 ns/op	         1.370 s/recovery
BenchmarkMemoryPerSession/gateway-2   	       1	2462037663 ns/op	       288.0 bytes/session
BenchmarkRestart1M/pending-2   	       1	 437288061 ns/op	     84032 minflt/restart	       0.4368 s/restart
BenchmarkRestart1M/day-2   	       1	 790299373 ns/op	    135675 minflt/restart	       0.7902 s/restarts
`
	if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	rows, err := goBenchRows(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"BenchmarkLookupConsume/pending=10000":   {"≤ 500 ns, ≤ 1 alloc", "met"},
		"BenchmarkLookupConsume/pending=1000000": {"≤ 500 ns, ≤ 1 alloc", "MISSED"},
		"BenchmarkRecovery1M/pending":            {"≤ 1 s", "MISSED"},
		"BenchmarkMemoryPerSession/gateway":      {"≤ 300 bytes", "met"},
		"BenchmarkRestart1M/pending":             {"≤ 1 s", "met"},
		"BenchmarkRestart1M/day":                 {"≤ 1 s", "MISSED"}, // its unit renamed: no value is no pass
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %q", rows)
	}
	for _, r := range rows {
		if w := want[r[0]]; r[2] != w[0] || r[3] != w[1] {
			t.Errorf("%s: target %q %q, want %q %q", r[0], r[2], r[3], w[0], w[1])
		}
	}
}

// TestBenchWebhookProfileNeedsTheRun: --cpuprofile-webhooks with a part
// that makes no WAL webhook run is refused, not silently left unwritten.
func TestBenchWebhookProfileNeedsTheRun(t *testing.T) {
	var out, log bytes.Buffer
	prof := filepath.Join(t.TempDir(), "webhooks.prof")
	err := bench([]string{"--only", "store", "--cpuprofile-webhooks", prof}, &out, &log)
	if err == nil || !strings.Contains(err.Error(), "--cpuprofile-webhooks") {
		t.Fatalf("bench --only store --cpuprofile-webhooks = %v, want a usage error", err)
	}
}

// TestBenchLoadRows runs the load part of `mogate bench` briefly: its rows
// are printed, the process CPU per request among them, and every answered
// webhook verified its session, and --cpuprofile-webhooks wrote the
// profile of that run. It checks what is measured, never how fast.
func TestBenchLoadRows(t *testing.T) {
	slots, _ := schedulerSlots("memory", os.LookupEnv, runtime.GOMAXPROCS(0)) // the environment may set GOMAXPROCS
	var out, log bytes.Buffer
	prof := filepath.Join(t.TempDir(), "webhooks.prof")
	if err := bench([]string{"--only", "load", "--duration", "300ms", "--conns", "8", "--cpuprofile-webhooks", prof}, &out, &log); err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("--cpuprofile-webhooks: %v, %v", fi, err)
	}
	for _, r := range []string{"load: empty Gin handler (ceiling)", "load: signed Twilio webhook → durable verify (WAL)", "ratio webhook / ceiling",
		"process CPU per request, ceiling / webhook", " µs / ", "the webhook run's events, undelivered after it", "delivered within",
		"GOMAXPROCS, ceiling / webhook (mogate serve's, store: memory)", fmt.Sprintf("| %d / %d ", runtime.GOMAXPROCS(0), slots)} {
		if !strings.Contains(out.String(), r) {
			t.Errorf("no row %q in\n%s", r, out.String())
		}
	}
	if strings.Contains(out.String(), "errors") {
		t.Errorf("failed requests:\n%s", out.String())
	}
}

type fakeOutbox struct{ left []int }

func (f *fakeOutbox) Undelivered() int {
	n := f.left[0]
	if len(f.left) > 1 {
		f.left = f.left[1:]
	}
	return n
}

// spinOutbox burns CPU on each question, as a draining outbox does.
type spinOutbox struct {
	fakeOutbox
	spent time.Duration
	spins int
}

func (s *spinOutbox) Undelivered() int {
	start := selfCPU()
	for n := 0; selfCPU()-start < 2*time.Millisecond; n++ {
		s.spins = n // work the drain's CPU count must see
	}
	s.spent += selfCPU() - start
	return s.fakeOutbox.Undelivered()
}

// TestDrainOutbox: the load run waits for the outbox to empty and counts
// the CPU meanwhile; an outbox that never empties is reported, not waited
// for without end.
func TestDrainOutbox(t *testing.T) {
	var cpu time.Duration
	spin := &spinOutbox{fakeOutbox: fakeOutbox{left: []int{5, 2, 0}}}
	took, left := drainOutbox(spin, &cpu, time.Minute)
	if left != 0 || took < 10*time.Millisecond {
		t.Fatalf("drain took %s with %d left, want two 5 ms waits and none left", took, left)
	}
	if cpu < spin.spent {
		t.Fatalf("CPU counted %s, want at least the %s the outbox spent", cpu, spin.spent)
	}
	if _, left := drainOutbox(struct{}{}, &cpu, time.Minute); left != -1 {
		t.Fatalf("left = %d for a store that does not count, want -1", left)
	}
	if r := (loadResult{left: -1}).backlog(); !strings.Contains(r, "not measured") {
		t.Fatalf("backlog = %q", r)
	}
	_, left = drainOutbox(&fakeOutbox{left: []int{7}}, &cpu, 20*time.Millisecond)
	if left != 7 {
		t.Fatalf("left = %d, want 7 after the limit", left)
	}
	if r := (loadResult{left: 7, drain: time.Minute}).backlog(); !strings.Contains(r, "7 still undelivered") {
		t.Fatalf("backlog = %q", r)
	}
}
