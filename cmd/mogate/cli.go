package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mogate: reverse-OTP phone verification gateway

Usage:
  mogate serve --config mogate.yaml       run the gateway; the file is the one source of settings
  mogate serve [--listen A] [--data-dir D]
                                          dev mode: no file, a demo provider, numbers and API key
  mogate sms simulate --from N --text T [--to N] [--provider P] [--url U [--yes]] [--config F] [--api-key K]
                                          play the user's phone: post a signed provider webhook to the
                                          sender's pending verification's number, say what it did;
                                          a --url other than public_url or loopback needs --yes
  mogate numbers list --config F [--provider NAME]
                                          the pool and where each provider sends its numbers' inbound SMS now
  mogate numbers sync --config F [--dry-run] [--provider NAME]
                                          point every pool number's inbound SMS at public_url/webhooks/{entry}
  mogate conformance config [--listen A] [--public-url U] [--data-dir D]
                                          print the configuration a conformance target runs with
  mogate conformance run --target URL [--provider P] [--public-url U] [--api-key K] [--config F]
                                          replay every recorded provider webhook against a running mogate;
                                          with --config F: F's entries, secrets and numbers, under key K
  mogate bench [--conns 64] [--duration 5s] [--gobench FILE] [--redis ADDR]
                                          loopback load runs and the Redis comparison (make bench)
  mogate version                          also: --version and --help on every subcommand

Exit status: 0 done (and --help), 1 the work failed, 2 the command line is wrong (usage on stderr).
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// --version and --help work on every subcommand and exit 0; help
	// (the flag set's usage) goes to stdout then.
	for _, a := range args {
		switch a {
		case "--version", "-version":
			fmt.Fprintf(stdout, "mogate %s (%s)\n", version, runtime.Version())
			return 0
		case "--help", "-help", "-h":
			stderr = stdout
		}
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "sms":
		if len(args) < 2 || args[1] != "simulate" {
			fmt.Fprint(stderr, usage)
			if len(args) == 2 && stderr == stdout { // mogate sms --help
				return 0
			}
			return 2
		}
		err = simulate(args[2:], stdout, stderr)
	case "numbers":
		if len(args) < 2 || args[1] != "list" && args[1] != "sync" {
			_ = numbersCmd(args[1:], stdout, stderr) // prints the usage
			if len(args) == 2 && stderr == stdout {  // mogate numbers --help
				return 0
			}
			return 2
		}
		err = numbersCmd(args[1:], stdout, stderr)
	case "conformance":
		err = conformanceCmd(args[1:], stdout, stderr)
	case "bench":
		err = bench(args[1:], stdout, stderr)
	case "version":
		if stderr == stdout { // mogate version --help
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stdout, "mogate %s (%s)\n", version, runtime.Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mogate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if ue := (usageError{}); errors.As(err, &ue) {
		fmt.Fprintln(stderr, "mogate:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mogate:", err)
		return 1
	}
	return 0
}

// usageError is a command line refused before anything was done: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func printDevBanner(w io.Writer, cfg config.Config, c config.DevCredentials) {
	fmt.Fprintf(w, `
  mogate dev mode — %s
  (no --config: embedded defaults; credentials kept in %s/%s)

  API key:            %s
  provider "dev":     type twilio, auth token %s
  numbers:            %s (serves every country), %s (GB, IE)

  Try it (README "Two-minute walkthrough"):
    curl -s -H 'Authorization: Bearer %s' -d '{"number":"+14155550123"}' %s/v1/verifications
    mogate sms simulate --from +14155550123 --text '<code>'

`, cfg.PublicURL, cfg.DataDir, config.DevCredentialsFile, c.APIKey, c.AuthToken, cfg.Numbers[0].Number, cfg.Numbers[1].Number, c.APIKey, cfg.PublicURL)
}

// pickProvider resolves --provider (a name, else a type) or, without it, the
// provider of the --to number, else the first provider.
func pickProvider(cfg config.Config, want, to string) (config.Provider, error) {
	if len(cfg.Providers) == 0 {
		return config.Provider{}, errors.New("the configuration has no providers")
	}
	if want != "" {
		for _, p := range cfg.Providers {
			if p.Name == want {
				return p, nil
			}
		}
		for _, p := range cfg.Providers {
			if p.Type == want {
				return p, nil
			}
		}
		return config.Provider{}, fmt.Errorf("no provider named or of type %q", want)
	}
	for _, n := range cfg.Numbers {
		if n.Number == adapters.E164(to) {
			for _, p := range cfg.Providers {
				if p.Name == n.Provider {
					return p, nil
				}
			}
		}
	}
	return cfg.Providers[0], nil
}
