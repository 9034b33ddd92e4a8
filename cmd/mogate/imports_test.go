package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/mogate/mogate"

// TestImportRules: the packages import each other as docs/design.md says
// ("Who may import whom"), read from the import lines of every non-test
// file of the module.
func TestImportRules(t *testing.T) {
	graph := moduleImports(t, filepath.Join("..", ".."))
	for _, p := range []string{"adapters", "matcher", "matcher/text", "matcher/memstore", "matcher/redisstore", "matcher/wal", "gateway", "pool", "cmd/mogate", "gateway/backend", "cmd/mogate/wire", "cmd/mogate/app"} {
		if _, ok := graph[p]; !ok {
			t.Fatalf("package %s not found: %v", p, graph)
		}
	}
	for _, v := range importViolations(graph) {
		t.Error(v)
	}
	// The top level is fixed (docs/design.md): a new package goes below one
	// of these, the composition root below cmd/mogate.
	top := []string{".", "adapters", "cmd", "config", "conformance", "gateway", "matcher", "pool", "tools"}
	for p := range graph {
		if first, _, _ := strings.Cut(p, "/"); !slices.Contains(top, first) {
			t.Errorf("package %s is outside the fixed top level %v", p, top)
		}
	}
}

// TestImportRulesCatchViolations: each rule refuses what it must.
func TestImportRulesCatchViolations(t *testing.T) {
	for _, bad := range []map[string][]string{
		{"adapters/twilio": {"adapters", "matcher"}},
		{"adapters/registry": {"gateway"}},
		{"matcher": {"config"}},
		{"matcher/redisstore": {"pool"}},
		{"matcher/wal": {"matcher"}},
		{"matcher": {"matcher/wal"}},
		{"matcher": {"matcher/memstore"}},
		{"matcher/text": {"matcher"}},
		{"matcher/redisstore": {"matcher/memstore"}},
		{"matcher/memstore": {"matcher/redisstore"}},
		{"matcher/storetest": {"matcher/memstore"}},
		{"pool": {"matcher/memstore"}},
		{"gateway/outbox": {"matcher/memstore"}},
		{"pool": {"config"}},
		{"gateway/client": {"matcher"}},
		{"gateway": {"conformance"}},
		{"gateway/outbox": {"cmd/mogate"}},
		{"gateway": {"matcher/redisstore"}},
		{"gateway": {"matcher/wal"}},
		{"gateway": {"matcher/memstore"}},
		{"gateway": {"cmd/mogate/wire"}},
		{"gateway/outbox": {"cmd/mogate/app"}},
		{"gateway/backend": {"matcher/redisstore"}},
		{"gateway/backend": {"config"}},
	} {
		if len(importViolations(bad)) == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	good := map[string][]string{
		"cmd/mogate":         {"gateway", "conformance", "matcher/memstore"},
		"adapters/registry":  {"adapters", "adapters/twilio", "config"},
		"matcher/redisstore": {"matcher", "matcher/redisstore/redisurl"},
		"matcher":            {"matcher/text"},
		"matcher/memstore":   {"matcher", "matcher/text", "matcher/wal"},
		"matcher/storetest":  {"matcher"},
		"gateway":            {"matcher", "matcher/text", "gateway/backend", "gateway/outbox"},
		"gateway/backend":    {"matcher"},
		"cmd/mogate/wire":    {"gateway/backend", "config", "matcher", "matcher/wal", "matcher/redisstore", "matcher/memstore"},
		"cmd/mogate/app":     {"gateway", "cmd/mogate/wire"},
	}
	if v := importViolations(good); len(v) > 0 {
		t.Errorf("refused: %v", v)
	}
}

// moduleImports maps every package of the module (path below the module)
// to the module's packages its non-test files import.
func moduleImports(t *testing.T, root string) map[string][]string {
	t.Helper()
	graph := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := graph[pkg]; !ok {
			graph[pkg] = nil
		}
		for _, imp := range f.Imports {
			p := strings.Trim(imp.Path.Value, `"`)
			if dep, ok := strings.CutPrefix(p, modulePath+"/"); ok && !slices.Contains(graph[pkg], dep) {
				graph[pkg] = append(graph[pkg], dep)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return graph
}

// under reports whether pkg is root or a package below it.
func under(pkg, root string) bool { return pkg == root || strings.HasPrefix(pkg, root+"/") }

// importViolations returns the imports of graph that break the rules.
func importViolations(graph map[string][]string) []string {
	var out []string
	forbid := func(pkg, dep, why string) { out = append(out, pkg+" imports "+dep+": "+why) }
	for pkg, deps := range graph {
		for _, dep := range deps {
			switch {
			case under(pkg, "adapters") && (under(dep, "gateway") || under(dep, "matcher") || under(dep, "pool")):
				forbid(pkg, dep, "adapters are pure: request bytes in, messages out")
			case under(pkg, "matcher") && (under(dep, "gateway") || under(dep, "adapters") || under(dep, "pool") || under(dep, "config")):
				forbid(pkg, dep, "the matcher and its stores know nothing of HTTP, providers or configuration")
			case pkg == "matcher/wal" || pkg == "matcher/text" || pkg == "pool" || pkg == "gateway/client" || pkg == "gateway/connlimit":
				forbid(pkg, dep, "a leaf package imports no mogate package")
			case pkg == "matcher" && dep != "matcher/text":
				forbid(pkg, dep, "the store contract imports no store, only the text rules")
			case under(dep, "matcher/memstore") && !under(pkg, "matcher/memstore") && !under(pkg, "cmd/mogate"):
				forbid(pkg, dep, "only the composition root (cmd/mogate/wire, and the benchmarks) opens the memory store")
			case under(pkg, "matcher/memstore") && under(dep, "matcher/redisstore"), under(pkg, "matcher/redisstore") && under(dep, "matcher/memstore"):
				forbid(pkg, dep, "a store imports the contract and the text rules, never another store")
			case (under(dep, "cmd") || under(dep, "conformance")) && !under(pkg, "cmd") && !under(pkg, "conformance"):
				forbid(pkg, dep, "only cmd/mogate imports the commands and the conformance suite")
			case under(pkg, "gateway") && under(dep, "matcher") && dep != "matcher" && dep != "matcher/text":
				forbid(pkg, dep, "the gateway runs on the store it is given (backend.Backend): only the composition root (cmd/mogate/wire) opens a store")
			case pkg == "gateway/backend" && dep != "matcher":
				forbid(pkg, dep, "backend is the hand-over type: it knows the store contract only")
			}
		}
	}
	slices.Sort(out)
	return out
}
