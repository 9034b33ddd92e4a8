// Package conformance replays recorded provider webhooks against a mogate:
// the fixture format (testdata/<provider>/<case>.json), the runner used by
// `go test ./conformance/...` and by `mogate conformance run`, and the
// configuration a target must run with (`mogate conformance config`).
//
// A fixture is a provider request as recorded (or as its documentation or
// SDK tests show it), with the parts that must change per run written as
// placeholders: {{code}}, {{message_id}}, {{message_id_2}}, {{message_id_3}},
// {{ref}}, {{unix}}, {{iso}}, {{vonage_time}} and {{vonage_time_form}} (the
// same, with its space percent-encoded for forms and query strings). The runner fills them,
// re-signs the request for the target's public URL with the provider's
// Resign, creates a verification for every expected message through the
// API, and adds the negative variants itself: a bad signature, a tampered
// body, a stale timestamp where the scheme signs one, and a duplicate
// delivery (the same answer, no second event).
//
// A fixture whose events all come from hidden senders (sender_hidden: a
// WhatsApp username without phone number) gets a capture verification on
// their number instead, and its requests carry that verification's code as
// {{code}}: the delivery must leave it pending.
//
// A handshake fixture is the provider's GET check of the endpoint (Meta's
// hub.challenge): the runner sends it as recorded, unsigned, with
// {{verify_token}} the entry's verify_token, and compares the answer's
// status and, when expect.body is set, its body.
package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Fixture is one recorded case.
type Fixture struct {
	Name        string            `json:"-"` // <provider>/<file name without .json>
	Provider    string            `json:"provider"`
	Source      string            `json:"source"`
	Description string            `json:"description"`
	Secrets     map[string]string `json:"secrets"`
	// Numbers are receiving numbers the provider entry needs beyond the
	// events' "to" (a provider whose payload lacks the receiving number).
	Numbers []string `json:"numbers,omitempty"`
	// NumberIDs are receiving numbers by the provider's id of them
	// (phone_number_id -> E.164), for a provider whose payload names the
	// number only by id (events then have to_id, not to).
	NumberIDs map[string]string `json:"number_ids,omitempty"`
	// Handshake: the one request is a GET check of the endpoint, not a
	// message (no signature, no events).
	Handshake bool      `json:"handshake,omitempty"`
	Requests  []Request `json:"requests"`
	Expect    Expect    `json:"expect"`
}

// Request is one recorded HTTP request; Path includes the query.
type Request struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	// SignedWithout lists form parameters of Body that the provider adds
	// after signing (Twilio's StirVerstat, as some report): the runner
	// signs the form without them and sends it with them.
	SignedWithout []string `json:"signed_without,omitempty"`
}

// Expect is what the gateway must answer and which messages it must see.
type Expect struct {
	Status int     `json:"status"`
	Events []Event `json:"events"`
	// Pending says the events verify nothing (an unattested call, a hidden
	// sender): the verifications the runner creates must stay pending.
	Pending bool `json:"pending,omitempty"`
	// Body, when set, is the answer's exact body (placeholders filled): on
	// the delivery and the redelivery of the last request (a voice
	// request's <Reject>), or to a handshake.
	Body *string `json:"body,omitempty"`
}

// Event is a canonical message (adapters.Inbound) the request carries.
type Event struct {
	MessageID string `json:"message_id"`
	From      string `json:"from"`
	To        string `json:"to"`
	Text      string `json:"text"`
	Parts     int    `json:"parts,omitempty"`
	Part      int    `json:"part,omitempty"`
	PartsRef  string `json:"parts_ref,omitempty"`
	// VerifiedNumber is the sender as the gateway resolves it, when that
	// differs from From (a national number); the runner verifies it.
	VerifiedNumber string `json:"verified_number,omitempty"`
	// ToID is the provider's id of the receiving number (To is then "").
	ToID string `json:"to_id,omitempty"`
	// What the adapter reads beside the message (adapters.Inbound): the
	// channel ("" for sms), a hidden sender (From is then its user id: the
	// gateway verifies nothing with it), a call's attestation and what the
	// provider told of the sender.
	Channel       string `json:"channel,omitempty"`
	SenderHidden  bool   `json:"sender_hidden,omitempty"`
	Attestation   string `json:"attestation,omitempty"`
	LineType      string `json:"line_type,omitempty"`
	Carrier       string `json:"carrier,omitempty"`
	SenderCountry string `json:"sender_country,omitempty"`
}

// Load reads every testdata/<provider>/*.json of fsys.
func Load(fsys fs.FS) ([]Fixture, error) {
	files, err := fs.Glob(fsys, "*/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var out []Fixture
	var errs []error
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		var fx Fixture
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fx); err != nil {
			errs = append(errs, fmt.Errorf("conformance: %s: %w", f, err))
			continue
		}
		fx.Name = strings.TrimSuffix(f, ".json")
		if dir := path.Dir(f); fx.Provider != dir {
			errs = append(errs, fmt.Errorf("conformance: %s: provider %q in folder %q", f, fx.Provider, dir))
		}
		if len(fx.Requests) == 0 || fx.Expect.Status == 0 {
			errs = append(errs, fmt.Errorf("conformance: %s: needs requests and expect.status", f))
		}
		if fx.Handshake && (len(fx.Requests) != 1 || fx.Requests[0].Method != "GET" || len(fx.Expect.Events) > 0) {
			errs = append(errs, fmt.Errorf("conformance: %s: a handshake is one GET request and no events", f))
		}
		out = append(out, fx)
	}
	// One provider entry per type: its fixtures must agree on secrets.
	secrets := map[string]map[string]string{}
	for _, fx := range out {
		if s, ok := secrets[fx.Provider]; ok && fmt.Sprint(s) != fmt.Sprint(fx.Secrets) {
			errs = append(errs, fmt.Errorf("conformance: %s: secrets differ from the provider's other fixtures", fx.Name))
		}
		secrets[fx.Provider] = fx.Secrets
	}
	return out, errors.Join(errs...)
}

// Providers returns the provider types of fixtures, sorted.
func Providers(fixtures []Fixture) []string {
	var out []string
	for _, f := range fixtures {
		if !slices.Contains(out, f.Provider) {
			out = append(out, f.Provider)
		}
	}
	slices.Sort(out)
	return out
}

// vars are the placeholder values of one run of one fixture.
type vars map[string]string

func (v vars) expand(s string) string {
	for k, val := range v {
		s = strings.ReplaceAll(s, "{{"+k+"}}", val)
	}
	return s
}
