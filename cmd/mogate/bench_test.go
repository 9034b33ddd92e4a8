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
	for _, tc := range []struct {
		only string
		rows []string
	}{
		{"store", []string{"create+verify, Redis store, full semantics", "ratio full semantics / Lua baseline"}},
		{"replicas", []string{"Redis SET alone", "Redis store, 1 replica", "3 replicas round-robin"}},
	} {
		t.Run(tc.only, func(t *testing.T) {
			var out, log bytes.Buffer
			err := bench([]string{"--only", tc.only, "--duration", "300ms", "--conns", "8", "--redis", srv.Addr()}, &out, &log)
			if err != nil {
				t.Fatalf("bench: %v\n%s", err, log.String())
			}
			for _, r := range tc.rows {
				if !strings.Contains(out.String(), r) {
					t.Errorf("no row %q in\n%s", r, out.String())
				}
			}
			if strings.Contains(out.String(), "errors") || strings.Contains(out.String(), "not run") {
				t.Errorf("failed requests or runs:\n%s", out.String())
			}
		})
	}
}
