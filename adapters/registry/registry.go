// Package registry is the one description of mogate's provider types: per
// type, its configuration keys (which are required, which are secrets), the
// adapter that checks and parses its webhooks, and the REST client that
// points its numbers at mogate (`mogate numbers`). Config validation, the
// gateway, the conformance runner and the CLI all read this table; it is
// written out in types.go, in one place: no init() registration, no blank
// imports.
package registry

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/provision"
	"github.com/mogate/mogate/config"
)

// Type is one provider type: a row of the table.
type Type struct {
	config.Schema
	// Adapter builds the entry's webhook adapter.
	Adapter func(p config.Provider, env Env) (adapters.Adapter, error)
	// REST builds the entry's REST client for `mogate numbers`; nil when the
	// type has no API mogate uses, and Manual says how to do it by hand
	// ({url} stands for the entry's public_url/webhooks/{name}).
	REST   func(p config.Provider, hc *http.Client) (provision.Client, error)
	Manual string
}

// Env is what adapters may use of the outside world.
type Env struct {
	Now  func() time.Time // nil: time.Now
	HTTP *http.Client     // outbound calls (SNS certificates); nil: a default client
}

// Types lists the provider types, in documentation order.
func Types() []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name()
	}
	return out
}

// Name is the type's id: config `type`, package name and testdata folder.
func (t Type) Name() string { return t.Type }

// Lookup returns the row of a type.
func Lookup(typ string) (Type, bool) {
	for _, t := range types {
		if t.Name() == typ {
			return t, true
		}
	}
	return Type{}, false
}

// Schemas returns the configuration part of every row.
func Schemas() []config.Schema {
	out := make([]config.Schema, len(types))
	for i, t := range types {
		out[i] = t.Schema
	}
	return out
}

// Check checks cfg's provider entries against the table (config.Parse
// checks everything else). It may set defaults.
func Check(cfg *config.Config) error { return cfg.CheckProviders(Schemas()) }

// Load reads, validates and checks the configuration file at path.
func Load(path string) (config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return config.Config{}, fmt.Errorf("config: %w", err)
	}
	return Parse(b, os.LookupEnv)
}

// Parse is config.Parse followed by Check.
func Parse(b []byte, lookup func(string) (string, bool)) (config.Config, error) {
	cfg, err := config.Parse(b, lookup)
	if err != nil {
		return cfg, err
	}
	if err := Check(&cfg); err != nil {
		return config.Config{}, err
	}
	return cfg, nil
}

// Secrets returns the values of p's secret keys, for scrubbing error texts.
func Secrets(p config.Provider) []string {
	t, _ := Lookup(p.Type)
	var out []string
	for _, k := range t.Keys {
		if v := p.Get(k.Name); k.Secret && v != "" {
			out = append(out, v)
		}
	}
	if v := p.PrivateKey.Reveal(); v != "" {
		out = append(out, v)
	}
	return out
}

// Build returns the adapters of providers keyed by entry name, each entry
// checked against its row first. All errors are joined. Build panics on a
// duplicate name: config validation rules that out, so one here is a
// programming error.
func Build(providers []config.Provider, env Env) (map[string]adapters.Adapter, error) {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.HTTP == nil {
		env.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	out := make(map[string]adapters.Adapter, len(providers))
	var errs []error
	for i, p := range providers {
		if _, dup := out[p.Name]; dup {
			panic("registry: duplicate provider name " + p.Name)
		}
		t, ok := Lookup(p.Type)
		if !ok {
			errs = append(errs, fmt.Errorf("registry: provider %q: type %q has no adapter in this build (available: %v)", p.Name, p.Type, Types()))
			continue
		}
		if err := errors.Join(p.CheckSchema(fmt.Sprintf("providers[%d]", i), t.Schema)...); err != nil {
			errs = append(errs, fmt.Errorf("registry: provider %q: %w", p.Name, err))
			continue
		}
		a, err := t.Adapter(p, env)
		if err != nil {
			errs = append(errs, fmt.Errorf("registry: provider %q: %w", p.Name, err))
			continue
		}
		out[p.Name] = a
	}
	return out, errors.Join(errs...)
}

// REST returns the REST client of an entry: nil, nil for a type without an
// API (see Manual).
func REST(p config.Provider, hc *http.Client) (provision.Client, error) {
	t, ok := Lookup(p.Type)
	if !ok {
		return nil, fmt.Errorf("registry: unknown provider type %q", p.Type)
	}
	if t.REST == nil {
		return nil, nil
	}
	return t.REST(p, hc)
}
