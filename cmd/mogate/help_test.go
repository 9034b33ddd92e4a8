package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// subcommands are every command line the CLI knows, for the tables below.
var subcommands = [][]string{
	{}, {"serve"}, {"sms"}, {"sms", "simulate"}, {"numbers"}, {"numbers", "list"}, {"numbers", "sync"},
	{"conformance"}, {"conformance", "config"}, {"conformance", "run"}, {"bench"}, {"version"}, {"help"},
}

// Every subcommand answers --help and --version with exit 0, on stdout.
func TestHelpAndVersionEverywhere(t *testing.T) {
	for _, sub := range subcommands {
		for _, flag := range []string{"--help", "-h", "--version"} {
			name := strings.Join(append(append([]string{"mogate"}, sub...), flag), " ")
			t.Run(name, func(t *testing.T) {
				var out, errb bytes.Buffer
				if code := run(append(append([]string{}, sub...), flag), &out, &errb); code != 0 {
					t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
				}
				want := "mogate "
				if flag != "--version" {
					want = "-"
				}
				if !strings.Contains(out.String(), want) {
					t.Fatalf("stdout %q lacks %q (stderr %q)", out.String(), want, errb.String())
				}
				if errb.Len() != 0 {
					t.Fatalf("stderr: %s", errb.String())
				}
			})
		}
	}
}

// TestExitCodes: a command line that cannot run (unknown subcommand or
// flag, a missing or conflicting flag, a stray argument) exits 2 with the
// usage on stderr and nothing on stdout; a failure of the work exits 1.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{}, 2},
		{[]string{"nope"}, 2},
		{[]string{"serve", "--bogus"}, 2},
		{[]string{"serve", "extra"}, 2},
		{[]string{"serve", "--config", missing, "--listen", "127.0.0.1:1"}, 2},
		{[]string{"sms"}, 2},
		{[]string{"sms", "nope"}, 2},
		{[]string{"sms", "simulate"}, 2},
		{[]string{"sms", "simulate", "--bogus"}, 2},
		{[]string{"numbers"}, 2},
		{[]string{"numbers", "nope"}, 2},
		{[]string{"numbers", "list"}, 2},
		{[]string{"numbers", "sync", "--bogus"}, 2},
		{[]string{"conformance"}, 2},
		{[]string{"conformance", "nope"}, 2},
		{[]string{"conformance", "config", "--bogus"}, 2},
		{[]string{"conformance", "run"}, 2},
		{[]string{"conformance", "run", "--target", "http://127.0.0.1:1", "--config", missing}, 2},
		{[]string{"conformance", "run", "--target", "http://127.0.0.1:1", "--provider", "nope"}, 2},
		{[]string{"bench", "--bogus"}, 2},
		{[]string{"bench", "--only", "nope"}, 2},

		{[]string{"serve", "--config", missing}, 1},
		{[]string{"numbers", "list", "--config", missing}, 1},
		{[]string{"sms", "simulate", "--data-dir", dir, "--from", "+14155550123", "--text", "1"}, 1},
		{[]string{"conformance", "run", "--target", "http://127.0.0.1:1", "--config", missing, "--api-key", "k"}, 1},
	}
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{"mogate"}, tc.args...), " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if tc.code == 2 {
				if out.Len() != 0 || !strings.Contains(strings.ToLower(errb.String()), "usage") {
					t.Fatalf("want the usage on stderr only\nstdout: %s\nstderr: %s", out.String(), errb.String())
				}
			}
			if !strings.Contains(errb.String(), "mogate") && !strings.Contains(errb.String(), "flag") {
				t.Fatalf("stderr says nothing: %q", errb.String())
			}
		})
	}
}
