package conformance

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/mogate/mogate/config"
)

// maxPace is the longest Retry-After the runner waits out.
const maxPace = 5 * time.Second

// ErrLimited is returned when a limit of the target stops the run.
var ErrLimited = errors.New("conformance: the target's limits stop the run")

// ForConfig adapts fixtures to a deployment's configuration, for
// `mogate conformance run --config F`: a fixture of provider type T is
// played by cfg's first entry of type T — the entry's name in the webhook
// path, the entry's secrets for signing — and each receiving number of the
// fixture becomes one of that entry's pool numbers (the same one when the
// pool has it, else the one sharing the longest prefix, so a country
// stays a country where the pool allows). Where the entry names its
// account (Twilio's account_sid, Vonage's api_key, an SNS topic), the
// requests carry that account instead of the recorded one; a number named
// by id (Meta's phone_number_id) is named by the pool number's. A type without
// an entry, or one that only the provider can sign for, is left out, with
// the reason in skipped (by type); so is a fixture whose events' channels
// no number of the entry serves (by fixture name).
func ForConfig(fixtures []Fixture, cfg config.Config) (out []Fixture, skipped map[string]string) {
	skipped = map[string]string{}
	for _, f := range fixtures {
		entry, ok := entryOfType(cfg, f.Provider)
		if !ok {
			skipped[f.Provider] = "the configuration has no entry of this type"
			continue
		}
		secrets := entrySecrets(entry)
		if k, ok := f.Secrets[signingOnly]; ok {
			// A key-pair scheme: the runner holds the private key only for
			// the fixtures' own public key.
			if entry.PublicKey != f.Secrets["public_key"] {
				skipped[f.Provider] = "entry " + entry.Name + " has another public_key: only the provider holds its private key"
				continue
			}
			secrets[signingOnly] = k
		}
		var pool []string
		has := false
		need := eventChannels(f)
		for _, n := range cfg.Numbers {
			if n.Provider == entry.Name {
				has = true
				if servesAll(n, need) {
					pool = append(pool, n.Number)
				}
			}
		}
		if !has {
			skipped[f.Provider] = "entry " + entry.Name + " has no number"
			continue
		}
		if len(pool) == 0 {
			// Only this case: the entry's other fixtures still run.
			skipped[f.Name] = "no number of entry " + entry.Name + " serves " + strings.Join(need, " and ")
			continue
		}
		g := f
		g.Secrets = secrets
		var swaps []string // old digits, new digits, ...
		mapped := func(n string) string {
			to := closest(pool, n)
			if to != n {
				swaps = append(swaps, strings.TrimPrefix(n, "+"), strings.TrimPrefix(to, "+"))
			}
			return to
		}
		g.Numbers = nil
		for _, n := range f.Numbers {
			g.Numbers = append(g.Numbers, mapped(n))
		}
		// A number named by id: the mapped number's id, in the requests too.
		newID := map[string]string{}
		g.NumberIDs = nil
		for id, n := range f.NumberIDs {
			to := mapped(n)
			nid := numberID(cfg, to)
			if g.NumberIDs == nil {
				g.NumberIDs = map[string]string{}
			}
			g.NumberIDs[nid], newID[id] = to, nid
			if nid != id {
				swaps = append(swaps, id, nid)
			}
		}
		g.Expect.Events = nil
		for _, e := range f.Expect.Events {
			if e.To != "" {
				e.To = mapped(e.To)
			}
			if e.ToID != "" {
				e.ToID = newID[e.ToID]
			}
			g.Expect.Events = append(g.Expect.Events, e)
		}
		r := strings.NewReplacer(swaps...)
		g.Requests = nil
		for _, req := range f.Requests {
			if rest, ok := strings.CutPrefix(req.Path, "/webhooks/"+f.Provider); ok {
				req.Path = "/webhooks/" + entry.Name + rest
			}
			req.Path, req.Body = r.Replace(req.Path), r.Replace(req.Body)
			h := map[string]string{}
			for k, v := range req.Headers {
				h[k] = r.Replace(v)
			}
			req.Headers = h
			g.Requests = append(g.Requests, req)
		}
		out = append(out, withAccount(g, secrets))
	}
	return out, skipped
}

// eventChannels lists the channels of f's events.
func eventChannels(f Fixture) []string {
	var out []string
	for _, e := range f.Expect.Events {
		ch := e.Channel
		if ch == "" {
			ch = config.ChannelSMS
		}
		if !slices.Contains(out, ch) {
			out = append(out, ch)
		}
	}
	return out
}

// servesAll reports whether n serves every channel of need (a number
// without channels serves sms).
func servesAll(n config.Number, need []string) bool {
	have := n.Channels
	if len(have) == 0 {
		have = []string{config.ChannelSMS}
	}
	for _, ch := range need {
		if !slices.Contains(have, ch) {
			return false
		}
	}
	return true
}

// numberID is the phone_number_id of a pool number ("" for none).
func numberID(cfg config.Config, number string) string {
	for _, n := range cfg.Numbers {
		if n.Number == number {
			return n.PhoneNumberID
		}
	}
	return ""
}

func entryOfType(cfg config.Config, typ string) (config.Provider, bool) {
	for _, p := range cfg.Providers {
		if p.Type == typ {
			return p, true
		}
	}
	return config.Provider{}, false
}

// entrySecrets is the entry's keys in the fixtures' secrets form: config
// key -> value, secrets revealed, the first topic ARN.
func entrySecrets(p config.Provider) map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(p)
	for i := range v.NumField() {
		key, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if key == "" || key == "-" || key == "name" || key == "type" || !v.Type().Field(i).IsExported() {
			continue
		}
		switch fv := v.Field(i).Interface().(type) {
		case config.Secret:
			if fv.IsSet() {
				out[key] = fv.Reveal()
			}
		case string:
			if fv != "" {
				out[key] = fv
			}
		case []string:
			if len(fv) > 0 {
				out[key] = fv[0]
			}
		}
	}
	return out
}

// closest returns n when pool holds it, else the pool number sharing the
// longest prefix with n (the first on a tie).
func closest(pool []string, n string) string {
	best, bestLen := pool[0], -1
	for _, p := range pool {
		if p == n {
			return p
		}
		l := 0
		for l < len(p) && l < len(n) && p[l] == n[l] {
			l++
		}
		if l > bestLen {
			best, bestLen = p, l
		}
	}
	return best
}
