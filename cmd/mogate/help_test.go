package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every subcommand answers --help and --version with exit 0, on stdout.
func TestHelpAndVersionEverywhere(t *testing.T) {
	subcommands := [][]string{
		{}, {"serve"}, {"sms"}, {"sms", "simulate"}, {"conformance"}, {"conformance", "config"},
		{"conformance", "run"}, {"bench"}, {"version"}, {"help"},
	}
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
			})
		}
	}
}
