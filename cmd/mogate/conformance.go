package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mogate/mogate/conformance"
)

func conformanceCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "config" && args[0] != "run") {
		return errors.New("usage: mogate conformance config | run --target URL")
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
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *public == "" {
			*public = "http://" + *listen
		}
		fmt.Fprint(stdout, conformance.Config(fixtures, *listen, *public, *dataDir))
		return nil
	}
	target := fs.String("target", "", "base URL of the running mogate (required)")
	public := fs.String("public-url", "", "the target's public_url, when it differs from --target (behind a proxy)")
	provider := fs.String("provider", "", "only this provider type")
	apiKey := fs.String("api-key", conformance.APIKey, "API key of the target")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *target == "" {
		fs.Usage()
		return errors.New("--target is required")
	}
	if *provider != "" && !slices.Contains(conformance.Providers(fixtures), *provider) {
		return fmt.Errorf("no fixtures for provider %q (have: %s)", *provider, strings.Join(conformance.Providers(fixtures), ", "))
	}
	var run []conformance.Fixture
	for _, f := range fixtures {
		if why, skip := conformance.LiveSkip[f.Provider]; skip && *provider != f.Provider {
			if len(run) == 0 || run[len(run)-1].Provider != f.Provider {
				fmt.Fprintf(stdout, "skipping %s: %s (run it with --provider %s when the target can fetch it)\n", f.Provider, why, f.Provider)
			}
			continue
		}
		run = append(run, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	results := conformance.Run(ctx, conformance.Target{BaseURL: *target, PublicURL: *public, APIKey: *apiKey}, run, *provider)
	return printConformance(stdout, results)
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
