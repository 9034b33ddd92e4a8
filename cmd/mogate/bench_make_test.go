package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// benchRuns are the `go test ... -bench '<pattern>' ... ./<package>/`
// lines of the Makefile's bench target: each pattern with its package
// directory.
func benchRuns(t *testing.T, makefile string) [][2]string {
	t.Helper()
	b, err := os.ReadFile(makefile)
	if err != nil {
		t.Fatal(err)
	}
	var runs [][2]string
	in := false
	line := regexp.MustCompile(`-bench '([^']+)'.*\s(\./\S+?)/?(\s|$)`)
	for l := range strings.SplitSeq(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "bench:"):
			in = true
			continue
		case in && !strings.HasPrefix(l, "\t"):
			in = false
		}
		if !in || !strings.Contains(l, "-bench") {
			continue
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("Makefile bench target: cannot read the pattern and package of %q", l)
		}
		runs = append(runs, [2]string{strings.ReplaceAll(m[1], "$$", "$"), m[2]}) // make's $$ is $
	}
	return runs
}

// benchmarks are the names of the benchmark functions in dir's test files.
func benchmarks(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range af.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Benchmark") {
				names = append(names, fn.Name.Name)
			}
		}
	}
	return names
}

// unmatched are the alternatives of a -bench pattern (its top level, as
// `go test` matches benchmark names) that match none of names.
func unmatched(pattern string, names []string) ([]string, error) {
	top, _, _ := strings.Cut(pattern, "/")
	alts := []string{top}
	if !strings.ContainsAny(top, "()") {
		alts = strings.Split(top, "|")
	}
	var out []string
	for _, a := range alts {
		re, err := regexp.Compile(a)
		if err != nil {
			return nil, err
		}
		found := false
		for _, n := range names {
			found = found || re.MatchString(n)
		}
		if !found {
			out = append(out, a)
		}
	}
	return out, nil
}

// TestBenchMakefilePatterns: every alternative of every -bench pattern of
// `make bench` names at least one benchmark of the package it runs in, so
// moving a benchmark (or the package) fails here instead of making the
// target silently measure nothing.
func TestBenchMakefilePatterns(t *testing.T) {
	runs := benchRuns(t, "../../Makefile")
	if len(runs) == 0 {
		t.Fatal("the Makefile's bench target runs no go test -bench")
	}
	for _, r := range runs {
		pattern, pkg := r[0], r[1]
		names := benchmarks(t, filepath.Join("../..", pkg))
		miss, err := unmatched(pattern, names)
		if err != nil {
			t.Errorf("-bench %q: %v", pattern, err)
			continue
		}
		if len(miss) > 0 {
			t.Errorf("-bench %q in %s: %q match no benchmark there (it has %v)", pattern, pkg, miss, names)
		}
	}
}

// TestBenchUnmatched checks the check: an alternative that matches
// nothing is reported, whichever its place in the pattern.
func TestBenchUnmatched(t *testing.T) {
	names := []string{"BenchmarkLookupConsume", "BenchmarkCreate", "BenchmarkCreateVerify"}
	for _, tc := range []struct {
		pattern string
		want    string
	}{
		{"LookupConsume|Create$", "[]"},
		{"LookupConsume|Ingest|Create$", "[Ingest]"},
		{"Recovery1M", "[Recovery1M]"},
		{"Verify$/pending=10", "[]"},
	} {
		miss, err := unmatched(tc.pattern, names)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(miss, " "); "["+got+"]" != tc.want {
			t.Errorf("unmatched(%q) = %v, want %s", tc.pattern, miss, tc.want)
		}
	}
}
