package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway/client"
)

// devAddressFile is the file in a dev-mode data_dir where `mogate serve`
// records the base URL it listens on while it runs, so that `mogate sms
// simulate` finds it (also after --listen).
const devAddressFile = "dev-address"

// recordDevAddress writes base to dir/dev-address; the returned function
// removes it.
func recordDevAddress(dir, base string) (func(), error) {
	p := filepath.Join(dir, devAddressFile)
	if err := os.WriteFile(p, []byte(base+"\n"), 0o600); err != nil {
		return nil, err
	}
	return func() { _ = os.Remove(p) }, nil
}

func simulate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sms simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "sender: the user's phone, E.164 (required)")
	text := fs.String("text", "", "the SMS text (required)")
	to := fs.String("to", "", "receiving pool number (default: the number of the sender's pending verification, asked of the API)")
	provider := fs.String("provider", "", "provider entry name or type (default: the provider of --to)")
	target := fs.String("url", "", "base URL to post to (default: the dev server's recorded address, else public_url); the signature is always for public_url. Any URL but public_url or a loopback one needs --yes")
	yes := fs.Bool("yes", false, "post to a --url that is neither public_url nor loopback: it receives a valid provider signature and the API key")
	cfgPath := fs.String("config", "", "configuration file (none: the dev mode credentials)")
	dataDir := fs.String("data-dir", "./mogate-data", "dev mode data directory")
	apiKey := fs.String("api-key", "", "API key to look up the sender's verification with (default: dev mode's, or each key of --config in turn, to find whose session it is)")
	messageID := fs.String("message-id", "", "provider message id (default: random)")
	channel := fs.String("channel", adapters.ChannelSMS, "sms, whatsapp or call: what the user sends, signed as the receiving number's provider would (Meta or Twilio for whatsapp, Twilio Voice or Telnyx TeXML for call)")
	attestation := fs.String("attestation", "A", "with --channel call: the caller's STIR/SHAKEN attestation, A, B or none")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := simulatedInbound(*channel, *attestation)
	if err != nil {
		fs.Usage()
		return err
	}
	if *from == "" || *text == "" && m.Channel != adapters.ChannelCall {
		fs.Usage()
		return usageErr("--from and --text are required (--text is not, with --channel call)")
	}
	sender := adapters.E164(*from)
	var cfg config.Config
	key := *apiKey
	trusted := true // the target may be sent the configuration's keys
	if *cfgPath == "" {
		var creds config.DevCredentials
		cfg, creds, err = config.Dev(*dataDir, false)
		if err != nil {
			return fmt.Errorf("%w\n(start `make run` or `mogate serve` first, or pass --config)", err)
		}
		if key == "" {
			key = creds.APIKey
		}
		// Dev mode's public_url is its listen address.
		if b, err := os.ReadFile(filepath.Join(*dataDir, devAddressFile)); err == nil {
			cfg.PublicURL = strings.TrimSpace(string(b))
		}
		if *target != "" {
			if err := checkTarget(*target, cfg.PublicURL, *yes); err != nil {
				return err
			}
			trusted = trustedTarget(*target, cfg.PublicURL)
			cfg.PublicURL = strings.TrimRight(*target, "/")
		}
	} else {
		if cfg, err = registry.Load(*cfgPath); err != nil {
			return err
		}
		if *target != "" {
			if err := checkTarget(*target, cfg.BaseURL(), *yes); err != nil {
				return err
			}
			trusted = trustedTarget(*target, cfg.BaseURL())
		}
	}
	base := cfg.BaseURL()
	if *target != "" {
		base = strings.TrimRight(*target, "/")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The sender's pending verification tells the receiving number and,
	// afterwards, what the message did.
	keys := simulateKeys(*apiKey, key, cfg, trusted)
	api, sess, lookupErr := findPending(ctx, base, keys, sender, m.Channel, adapters.E164(*to))
	if lookupErr != nil {
		fmt.Fprintf(stdout, "(could not ask the API for %s's pending verification: %v)\n", sender, lookupErr)
	}
	if *to == "" && sess != nil {
		*to = routeTo(*sess, m.Channel)
	}
	p, err := pickProvider(cfg, *provider, *to)
	if err != nil {
		return err
	}
	if *to == "" {
		for _, n := range cfg.Numbers {
			if n.Provider == p.Name && numberServes(n, m.Channel) {
				*to = n.Number
				break
			}
		}
		if *to == "" {
			return fmt.Errorf("provider %q has no number; pass --to", p.Name)
		}
	}
	m.MessageID, m.From, m.To, m.Text = *messageID, sender, adapters.E164(*to), *text
	if m.Channel == adapters.ChannelCall {
		m.Text = ""
	}
	for _, n := range cfg.Numbers {
		if n.Number == m.To {
			m.ToID = n.PhoneNumberID // Meta names the receiving number by its id
		}
	}
	if err := postSigned(ctx, stdout, cfg, p, base, m); err != nil {
		return err
	}
	if sess == nil {
		if lookupErr == nil {
			fmt.Fprintf(stdout, "no session: no pending verification expects a message from %s on %s (the message went to capture matching, or stays unmatched)\n", sender, *to)
		}
		return nil
	}
	after, err := api.Get(ctx, sess.ID)
	if err != nil {
		return err
	}
	switch {
	case after.Status == "verified":
		via := "" // an SMS says what it always did
		if after.Channel != "" && after.Channel != adapters.ChannelSMS {
			via = ", channel " + after.Channel
		}
		fmt.Fprintf(stdout, "verified: %s (verified_number %s%s)\n", after.ID, after.VerifiedNumber, via)
	case after.Status == "failed":
		fmt.Fprintf(stdout, "wrong code %d of %d: %s failed (%s)\n", after.Attempts, after.MaxAttempts, after.ID, after.Reason)
	case after.Attempts > sess.Attempts:
		fmt.Fprintf(stdout, "wrong code %d of %d: %s still pending\n", after.Attempts, after.MaxAttempts, after.ID)
	default:
		fmt.Fprintf(stdout, "%s is %s\n", after.ID, after.Status)
	}
	return nil
}

// simulateKeys are the API keys to look the sender's session up with. A
// trusted target (public_url or loopback) gets flag (--api-key) or key (dev
// mode's), else every key of the configuration that has its plain key (a
// key_sha256 entry cannot be used); a host let through by --yes gets flag's
// alone, never dev mode's or every tenant's of the file.
func simulateKeys(flag, key string, cfg config.Config, trusted bool) []string {
	if !trusted {
		return []string{flag}
	}
	if key != "" {
		return []string{key}
	}
	var keys []string
	for _, k := range cfg.APIKeys {
		if k.Key.IsSet() {
			keys = append(keys, k.Key.Reveal())
		}
	}
	return keys
}

// simulatedInbound is the event --channel and --attestation describe,
// without its numbers and text.
func simulatedInbound(channel, attestation string) (adapters.Inbound, error) {
	m := adapters.Inbound{Channel: channel}
	switch channel {
	case adapters.ChannelSMS, adapters.ChannelWhatsApp:
		if attestation != "A" {
			return m, usageErr("--attestation is for --channel call")
		}
	case adapters.ChannelCall:
		switch attestation {
		case "A", "B":
			m.Attestation = attestation
		case "none":
		default:
			return m, usageErr("--attestation must be A, B or none, got %q", attestation)
		}
	default:
		return m, usageErr("--channel must be sms, whatsapp or call, got %q", channel)
	}
	return m, nil
}

// routeTo is the number of v's route on channel: the route the user would
// take (v's number when it lists no routes, the one SMS route).
func routeTo(v client.Verification, channel string) string {
	for _, r := range v.Routes {
		if r.Channel == channel {
			return r.To
		}
	}
	return v.To
}

// hasRoute reports whether v can be proven on channel at number to (any
// number when to is "").
func hasRoute(v client.Verification, channel, to string) bool {
	if len(v.Routes) == 0 {
		return channel == adapters.ChannelSMS && (to == "" || v.To == to)
	}
	for _, r := range v.Routes {
		if r.Channel == channel && (to == "" || r.To == to) {
			return true
		}
	}
	return false
}

// numberServes reports whether pool number n serves channel (sms when it
// lists none).
func numberServes(n config.Number, channel string) bool {
	return slices.Contains(numberChannels(n), channel)
}

// findPending asks the API with each key in turn for the sender's pending
// verification with a route on channel (to number to, when set) and
// returns the client of the key whose session it is. Without one, it
// returns the first key's client and the first lookup error, if every
// lookup failed.
func findPending(ctx context.Context, base string, keys []string, sender, channel, to string) (*client.Client, *client.Verification, error) {
	if len(keys) == 0 {
		keys = []string{""}
	}
	var firstErr error
	failed := 0
	for _, key := range keys {
		api := client.New(base, key, nil)
		pending, err := api.Pending(ctx, sender)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			failed++
			continue
		}
		for i := range pending {
			if hasRoute(pending[i], channel, to) {
				return api, &pending[i], nil
			}
		}
	}
	if failed < len(keys) {
		firstErr = nil
	}
	return client.New(base, keys[0], nil), nil, firstErr
}

// checkTarget refuses a --url that is neither public (the configuration's
// public_url) nor on a loopback host, unless yes: what simulate posts
// there carries a signature the real deployment accepts, and its API
// lookup the API key.
func checkTarget(target, public string, yes bool) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("--url must be an absolute http(s) URL, got %q", target)}
	}
	if yes || trustedTarget(target, public) {
		return nil
	}
	return usageError{fmt.Errorf("--url %s is neither public_url (%s) nor a loopback address; simulate would send it a valid provider signature and the API key. Nothing was sent; pass --yes if that host is yours", u.Redacted(), public)}
}

// trustedTarget reports whether target is public (the configuration's
// public_url) or on a loopback host: simulate may send it the
// configuration's keys to find whose session it is.
func trustedTarget(target, public string) bool {
	u, err := url.Parse(target)
	return err == nil && (sameBase(u, public) || config.IsLoopbackHost(u.Hostname()))
}

// sameBase reports whether u is the base URL public, up to the case of the
// scheme and host and a trailing slash.
func sameBase(u *url.URL, public string) bool {
	p, err := url.Parse(public)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Scheme, p.Scheme) && strings.EqualFold(u.Host, p.Host) &&
		strings.TrimRight(u.Path, "/") == strings.TrimRight(p.Path, "/") && u.User == nil
}

// postSigned signs m as provider entry p would for cfg's public_url and
// posts it to base, printing the request and the answer.
func postSigned(ctx context.Context, stdout io.Writer, cfg config.Config, p config.Provider, base string, m adapters.Inbound) error {
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
	req, err := signer.Sign(m, signedFor, time.Now())
	if err != nil {
		return err
	}
	postTo := base + signedFor.RequestURI()
	hreq, err := http.NewRequestWithContext(ctx, req.Method, postTo, bytes.NewReader(req.Body))
	if err != nil {
		return err
	}
	hreq.Header = req.Header
	kind := p.Type
	if m.ChannelOf() != adapters.ChannelSMS {
		kind += " " + m.Channel
	}
	fmt.Fprintf(stdout, "-> %s %s  (%s, %s -> %s: %q)\n", req.Method, postTo, kind, m.From, m.To, m.Text)
	resp, err := http.DefaultClient.Do(hreq)
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
