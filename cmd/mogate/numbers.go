package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/mogate/mogate/adapters/provision"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
)

// numbersHTTP makes the REST calls of `mogate numbers`. Redirects are not
// followed: a credential in the query (Vonage's api_secret) would travel
// to whatever host the answer names.
var numbersHTTP = &http.Client{
	Timeout: 30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// errNotInSync makes `numbers sync` exit 1 after printing its rows.
var errNotInSync = errors.New("not every number with an API is in sync")

// numbersCmd is `mogate numbers list|sync` (docs/providers.md).
func numbersCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "sync") {
		fmt.Fprint(stderr, "usage: mogate numbers list --config F [--provider NAME]\n       mogate numbers sync --config F [--dry-run] [--provider NAME]\n")
		return flag.ErrHelp
	}
	sync := args[0] == "sync"
	fs := flag.NewFlagSet("numbers "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (required)")
	provider := fs.String("provider", "", "only this provider entry")
	dryRun := false
	if sync {
		fs.BoolVar(&dryRun, "dry-run", false, "say what would change; make no write call")
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *cfgPath == "" {
		fs.Usage()
		return usageErr("--config is required")
	}
	cfg, err := registry.Load(*cfgPath)
	if err != nil {
		return err
	}
	entries, err := numberEntries(cfg, *provider)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	byNumber := map[string]provision.Row{}
	var rows []provision.Row
	if sync {
		rows = provision.Sync(ctx, entries, dryRun)
	} else {
		rows = provision.Inspect(ctx, entries)
	}
	for _, r := range rows {
		byNumber[r.Number] = r
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if sync {
		fmt.Fprintln(w, "NUMBER\tENTRY\tBEFORE\tAFTER\tACTION\tNOTE")
	} else {
		fmt.Fprintln(w, "NUMBER\tENTRY\tTYPE\tCHANNELS\tCOUNTRIES\tWEIGHT\tINBOUND SMS NOW\tSTATUS\tNOTE")
	}
	failed := 0
	for _, n := range cfg.Numbers {
		r, ok := byNumber[n.Number]
		if !ok {
			continue // another --provider
		}
		if !r.OK {
			failed++
		}
		if sync {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Number, r.Entry, dash(r.Before), dash(r.After), r.Action, r.Note)
			continue
		}
		countries := strings.Join(n.Countries, ",")
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Number, r.Entry, r.Type, strings.Join(numberChannels(n), ","), dash(countries),
			strconv.FormatFloat(n.Weight, 'g', -1, 64), dash(r.Before), r.Action, r.Note)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nInbound SMS of each number must go to %s/webhooks/{entry}, method POST.\n", cfg.BaseURL())
	switch {
	case sync && failed > 0:
		if dryRun {
			fmt.Fprintf(stdout, "%d number(s) would change or need attention; run without --dry-run to apply.\n", failed)
		}
		return errNotInSync
	case !sync && strings.Contains(actions(rows), "failed: "):
		return errors.New("a provider API call failed (see STATUS)")
	}
	return nil
}

// numberEntries builds the provider entries (of want, when set) with their
// pool numbers and REST clients.
func numberEntries(cfg config.Config, want string) ([]provision.Entry, error) {
	var out []provision.Entry
	found := want == ""
	for _, p := range cfg.Providers {
		if want != "" && p.Name != want {
			continue
		}
		found = true
		e := provision.Entry{Name: p.Name, Type: p.Type, URL: cfg.BaseURL() + "/webhooks/" + p.Name, Secrets: registry.Secrets(p)}
		for _, n := range cfg.Numbers {
			if n.Provider == p.Name {
				e.Numbers = append(e.Numbers, n.Number)
				if e.Channels == nil {
					e.Channels = map[string][]string{}
				}
				e.Channels[n.Number] = numberChannels(n)
			}
		}
		if len(e.Numbers) == 0 {
			continue
		}
		e.Client, e.Err = registry.REST(p, numbersHTTP)
		if e.Client == nil && e.Err == nil {
			t, _ := registry.Lookup(p.Type)
			e.Manual = t.Manual
		}
		out = append(out, e)
	}
	if !found {
		names := make([]string, len(cfg.Providers))
		for i, p := range cfg.Providers {
			names[i] = p.Name
		}
		return nil, fmt.Errorf("--provider: no provider entry named %q (entries: %s)", want, strings.Join(names, ", "))
	}
	return out, nil
}

// numberChannels are the channels n serves: its channels (which the
// configuration fills with its provider type's default), sms when none.
func numberChannels(n config.Number) []string {
	if len(n.Channels) == 0 {
		return []string{"sms"}
	}
	return n.Channels
}

func actions(rows []provision.Row) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.Action + "\n")
	}
	return b.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
