package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

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
		{"store", []string{"--only", "store", "--redis", srv.Addr()}, []string{"create+verify, Redis store, full semantics", "ratio full semantics / Lua baseline"}, false},
		{"replicas", []string{"--only", "replicas", "--redis", srv.Addr()}, []string{"Redis SET alone", "Redis store, 1 replica", "3 replicas round-robin"}, false},
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
		})
	}
}
