package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/conformance"
	"github.com/mogate/mogate/gateway/client"
)

const conformanceUsage = "usage: mogate conformance config [flags] | run --target URL [--config F --api-key K] [flags]"

func conformanceCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-help" || args[0] == "-h") { //nolint:gosec // G602: len(args) is 1
		fmt.Fprintln(stdout, conformanceUsage)
		return nil
	}
	if len(args) == 0 || (args[0] != "config" && args[0] != "run") {
		fmt.Fprintln(stderr, conformanceUsage)
		return usageErr("conformance: want config or run")
	}
	fixtures, err := conformance.Fixtures()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("conformance "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch args[0] {
	case "config":
		listen := fs.String("listen", "127.0.0.1:8090", "listen address of the target")
		public := fs.String("public-url", "", "public_url of the target (default http://<listen>)")
		dataDir := fs.String("data-dir", filepath.Join(os.TempDir(), "mogate-conformance"), "data_dir of the target")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *public == "" {
			*public = "http://" + *listen
		}
		fmt.Fprint(stdout, conformance.Config(fixtures, *listen, *public, *dataDir))
		return nil
	}
	target := fs.String("target", "", "base URL of the running mogate (required)")
	public := fs.String("public-url", "", "the target's public_url, when it differs from --target (behind a proxy); default with --config: the file's")
	provider := fs.String("provider", "", "only this provider type")
	apiKey := fs.String("api-key", conformance.APIKey, "API key of the target; every verification of the run is created under it (required with --config)")
	cfgPath := fs.String("config", "", "the target's configuration: sign with its provider entries and secrets for its public_url, on its numbers")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *target == "" {
		fs.Usage()
		return usageErr("--target is required")
	}
	if *provider != "" && !slices.Contains(conformance.Providers(fixtures), *provider) {
		fs.Usage()
		return usageErr("no fixtures for provider %q (have: %s)", *provider, strings.Join(conformance.Providers(fixtures), ", "))
	}
	publicFrom := "--target"
	if *public != "" {
		publicFrom = "--public-url"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	skipped := map[string]string{}
	for p, why := range conformance.LiveSkip {
		if p != *provider {
			skipped[p] = why + " (run it with --provider " + p + " when the target can fetch it)"
		}
	}
	if *cfgPath != "" {
		keyGiven := false
		fs.Visit(func(f *flag.Flag) { keyGiven = keyGiven || f.Name == "api-key" })
		if !keyGiven {
			fs.Usage()
			return usageErr("--api-key is required with --config: the key of the target that the run's verifications are created under (use one for conformance only: its app receives their events)")
		}
		cfg, err := registry.Load(*cfgPath)
		if err != nil {
			return err
		}
		if *public == "" {
			*public, publicFrom = cfg.BaseURL(), "the public_url of "+*cfgPath
		}
		if err := samePool(ctx, client.New(*target, *apiKey, nil), cfg); err != nil {
			return err
		}
		var notPlayable map[string]string
		fixtures, notPlayable = conformance.ForConfig(fixtures, cfg)
		for p, why := range notPlayable {
			// A key is a type, or a type/case when only that case cannot be played.
			if typ, _, _ := strings.Cut(p, "/"); skipped[typ] == "" && (*provider == "" || *provider == typ) {
				skipped[p] = why
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(skipped)) {
		if typ, _, _ := strings.Cut(p, "/"); *provider == "" || *provider == typ {
			fmt.Fprintf(stdout, "skipping %s: %s\n", p, skipped[p])
		}
	}
	var run []conformance.Fixture
	for _, f := range fixtures {
		if _, skip := skipped[f.Provider]; !skip {
			run = append(run, f)
		}
	}
	results := conformance.Run(ctx, conformance.Target{BaseURL: *target, PublicURL: *public, PublicURLFrom: publicFrom, APIKey: *apiKey}, run, *provider)
	return printConformance(stdout, results)
}

// samePool refuses a target whose pool (GET /v1/numbers: numbers and their
// provider entries) is not cfg's: the run would sign for entries and
// numbers the target does not have.
func samePool(ctx context.Context, api *client.Client, cfg config.Config) error {
	ns, err := api.Numbers(ctx)
	if err != nil {
		return fmt.Errorf("reading the target's pool (GET /v1/numbers): %w", err)
	}
	there := map[string]string{}
	for _, n := range ns {
		there[n.Number] = n.Provider
	}
	var diffs []string
	for _, n := range cfg.Numbers {
		switch entry, ok := there[n.Number]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s (entry %s) is not in the target's pool", n.Number, n.Provider))
		case entry != n.Provider:
			diffs = append(diffs, fmt.Sprintf("%s is entry %s on the target, %s in the file", n.Number, entry, n.Provider))
		}
		delete(there, n.Number)
	}
	for _, n := range slices.Sorted(maps.Keys(there)) {
		diffs = append(diffs, fmt.Sprintf("%s (entry %s) is in the target's pool, not in the file", n, there[n]))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("refusing the target: its pool does not match the configuration:\n  %s", strings.Join(diffs, "\n  "))
	}
	return nil
}

var conformanceColumns = []string{"parse", "bad signature", "tampered body", "stale timestamp", "deliver", "duplicate"}

// printConformance prints a table per provider and case, then the failures.
func printConformance(w io.Writer, results []conformance.Result) error {
	type key struct{ provider, kase string }
	cells := map[key]map[string]string{}
	var order []key
	var failures []conformance.Result
	for _, r := range results {
		k := key{r.Provider, r.Case}
		if cells[k] == nil {
			cells[k] = map[string]string{}
			order = append(order, k)
		}
		mark := "ok"
		if !r.OK {
			mark = "FAIL"
			failures = append(failures, r)
		}
		cells[k][r.Variant] = mark
	}
	provider := ""
	for _, k := range order {
		if k.provider != provider {
			provider = k.provider
			fmt.Fprintf(w, "\n%s\n  %-26s", provider, "case")
			for _, c := range conformanceColumns {
				fmt.Fprintf(w, " %-15s", c)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  %-26s", k.kase)
		for _, c := range conformanceColumns {
			v := cells[k][c]
			if v == "" {
				v = "-"
			}
			if s := cells[k]["setup"]; s != "" {
				v = "setup " + s
			}
			fmt.Fprintf(w, " %-15s", v)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\n%d checks, %d failed\n", len(results), len(failures))
	for _, f := range failures {
		fmt.Fprintf(w, "FAIL %s/%s %s: %s\n", f.Provider, f.Case, f.Variant, f.Detail)
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d conformance checks failed", len(failures))
	}
	return nil
}
