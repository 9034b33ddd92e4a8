package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// TestSchedulerSlots: the memory store, whose log fsyncs in the process,
// gets one slot more than Go's default; Redis keeps the default; a
// GOMAXPROCS the operator set, even empty, is never overridden.
func TestSchedulerSlots(t *testing.T) {
	for _, tc := range []struct {
		store  string
		env    map[string]string
		want   int
		wantOK bool
	}{
		{"memory", nil, 3, true},
		{"memory", map[string]string{"GOMAXPROCS": "2"}, 2, false},
		{"memory", map[string]string{"GOMAXPROCS": ""}, 2, false},
		{"redis", nil, 2, false},
	} {
		n, ok := schedulerSlots(tc.store, env(tc.env), 2)
		if n != tc.want || ok != tc.wantOK {
			t.Errorf("schedulerSlots(%q, %v, 2) = %d, %v; want %d, %v", tc.store, tc.env, n, ok, tc.want, tc.wantOK)
		}
	}
}

// unsetGOMAXPROCS makes the test run as if GOMAXPROCS were not in the
// environment (CI may set it), and puts it back after.
func unsetGOMAXPROCS(t *testing.T) {
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		os.Unsetenv("GOMAXPROCS")
		t.Cleanup(func() { os.Setenv("GOMAXPROCS", v) })
	}
}

// TestWithSlotsGivesTheSlotsBack: the bench runs a part with serve's
// slots and the next part with the slots before.
func TestWithSlotsGivesTheSlotsBack(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	var during int
	n, err := withSlots("memory", env(nil), func() error { during = runtime.GOMAXPROCS(0); return nil })
	if err != nil || n != def+1 || during != def+1 {
		t.Fatalf("withSlots: n %d, during %d, err %v; want %d", n, during, err, def+1)
	}
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("after withSlots GOMAXPROCS is %d, want %d as before", got, def)
	}
}

// TestServeSchedulerSlots: mogate serve on the memory store says and
// takes one slot more than the default, the same however often it
// starts in one process, and none when GOMAXPROCS is set.
func TestServeSchedulerSlots(t *testing.T) {
	unsetGOMAXPROCS(t)
	def := runtime.GOMAXPROCS(0)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// The port is taken: serve recovers its store, then stops with exit 1.
	args := []string{"serve", "--data-dir", filepath.Join(t.TempDir(), "dev"), "--listen", held.Addr().String()}
	want := "gomaxprocs=" + strconv.Itoa(def+1)
	for range 2 {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, errb.String())
		}
		if !strings.Contains(errb.String(), want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errb.String())
		}
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Fatalf("after serve GOMAXPROCS is %d, want %d back", got, def)
		}
	}
	t.Setenv("GOMAXPROCS", strconv.Itoa(def))
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, errb.String())
	}
	if strings.Contains(errb.String(), "gomaxprocs=") {
		t.Fatalf("serve changed the slots although GOMAXPROCS is set:\n%s", errb.String())
	}
}
