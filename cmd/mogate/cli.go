package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mogate: reverse-OTP phone verification gateway

Usage:
  mogate serve --config mogate.yaml       run the gateway; the file is the one source of settings
  mogate serve [--listen A] [--data-dir D]
                                          dev mode: no file, a demo provider, numbers and API key
  mogate sms simulate --from N --text T [--to N] [--provider P] [--url U] [--config F]
                                          play the user's phone: post a signed provider webhook
  mogate numbers list --config F [--provider NAME]
                                          the pool and where each provider sends its numbers' inbound SMS now
  mogate numbers sync --config F [--dry-run] [--provider NAME]
                                          point every pool number's inbound SMS at public_url/webhooks/{entry}
  mogate conformance config [--listen A] [--public-url U] [--data-dir D]
                                          print the configuration a conformance target runs with
  mogate conformance run --target URL [--provider P] [--public-url U] [--api-key K]
                                          replay every recorded provider webhook against a running mogate
  mogate bench [--conns 64] [--duration 5s] [--gobench FILE] [--redis ADDR]
                                          loopback load runs and the Redis comparison (make bench)
  mogate version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stdout, stderr)
	case "sms":
		if len(args) < 2 || args[1] != "simulate" {
			fmt.Fprint(stderr, usage)
			return 2
		}
		err = simulate(args[2:], stdout, stderr)
	case "numbers":
		err = numbersCmd(args[1:], stdout, stderr)
	case "conformance":
		err = conformanceCmd(args[1:], stdout, stderr)
	case "bench":
		err = bench(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "mogate %s (%s)\n", version, runtime.Version())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mogate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "mogate:", err)
		return 1
	}
	return 0
}

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

func simulate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sms simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "sender: the user's phone, E.164 (required)")
	text := fs.String("text", "", "the SMS text (required)")
	to := fs.String("to", "", "receiving pool number (default: the provider's first number)")
	provider := fs.String("provider", "", "provider entry name or type (default: the provider of --to)")
	target := fs.String("url", "", "base URL to post to (default: public_url); the signature is always for public_url")
	cfgPath := fs.String("config", "", "configuration file (none: the dev mode credentials)")
	dataDir := fs.String("data-dir", "./mogate-data", "dev mode data directory")
	messageID := fs.String("message-id", "", "provider message id (default: random)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *text == "" {
		fs.Usage()
		return errors.New("--from and --text are required")
	}
	var cfg config.Config
	var err error
	if *cfgPath == "" {
		cfg, _, err = config.Dev(*dataDir, false)
		if err != nil {
			return fmt.Errorf("%w\n(start `make run` or `mogate serve` first, or pass --config)", err)
		}
		if *target != "" { // dev mode's public_url is its listen address
			cfg.PublicURL = strings.TrimRight(*target, "/")
		}
	} else if cfg, err = registry.Load(*cfgPath); err != nil {
		return err
	}
	p, err := pickProvider(cfg, *provider, *to)
	if err != nil {
		return err
	}
	if *to == "" {
		for _, n := range cfg.Numbers {
			if n.Provider == p.Name {
				*to = n.Number
				break
			}
		}
		if *to == "" {
			return fmt.Errorf("provider %q has no number; pass --to", p.Name)
		}
	}
	ads, err := registry.Build([]config.Provider{p}, registry.Env{})
	if err != nil {
		return err
	}
	signer, ok := ads[p.Name].(adapters.Signer)
	if !ok {
		return fmt.Errorf("provider type %s cannot be simulated", p.Type)
	}
	signedFor, err := url.Parse(cfg.BaseURL() + "/webhooks/" + p.Name)
	if err != nil {
		return err
	}
	req, err := signer.Sign(adapters.Inbound{MessageID: *messageID, From: adapters.E164(*from), To: adapters.E164(*to), Text: *text}, signedFor, time.Now())
	if err != nil {
		return err
	}
	postTo := signedFor.String()
	if *target != "" {
		postTo = strings.TrimRight(*target, "/") + signedFor.RequestURI()
	}
	hreq, err := http.NewRequest(req.Method, postTo, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	hreq.Header = req.Header
	fmt.Fprintf(stdout, "-> %s %s  (%s, %s -> %s: %q)\n", req.Method, postTo, p.Type, *from, *to, *text)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "<- %s %s\n", resp.Status, strings.TrimSpace(string(body)))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("mogate answered %s", resp.Status)
	}
	return nil
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
