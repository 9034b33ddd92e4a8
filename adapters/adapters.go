// Package adapters defines the contract between mogate's gateway and its
// provider adapters: request bytes in, canonical Inbound messages out.
//
// Adapters are pure. They never persist, never answer HTTP and never import
// the gateway or the matcher; the gateway reads the body once, hands the
// adapter a Request, persists the outcome and answers. One package per
// provider lives below this one (adapters/twilio, adapters/vonage, ...), and
// adapters/registry wires them from configuration.
package adapters

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Request is an inbound webhook as the provider sent it.
type Request struct {
	Method string
	// URL is the public URL the provider called: public_url followed by the
	// request URI exactly as received. Signatures are checked against it.
	// The gateway shares it between the requests of one URL: it is read,
	// never modified (an adapter that needs another copies it).
	URL    *url.URL
	Header http.Header
	Body   []byte

	// form is Body parsed as a form, and the body it was parsed from: see
	// Params.
	form     Params
	formErr  error
	formBody string
	formDone bool
}

// Channels an inbound event arrives on (docs/channels.md).
const (
	ChannelSMS      = "sms"      // a text message (the default: "" reads as sms)
	ChannelWhatsApp = "whatsapp" // a WhatsApp message
	ChannelCall     = "call"     // an inbound call: the attested caller id is the proof
)

// Inbound is one received message (or call) in canonical form.
type Inbound struct {
	Provider  string // provider entry name (the webhook path segment)
	Account   string // provider account or sub-account, when the payload names one
	MessageID string // the provider's id for this message; the dedupe key
	From      string // sender: E.164 when the provider gives digits, else as given
	To        string // receiving number, E.164 ("" when the payload lacks it)
	Text      string
	// ReceivedAt is the provider's receive time, or arrival time when the payload has none.
	ReceivedAt time.Time
	// Parts, Part and PartsRef describe one part of a message that the
	// provider delivers in pieces (Vonage SMS API concat); Parts is 0 or 1
	// for a whole message.
	Parts, Part int
	PartsRef    string
	Raw         []byte

	// Channel is ChannelSMS ("" reads as sms), ChannelWhatsApp or ChannelCall.
	Channel string
	// ToID is the provider's id of the receiving number when the payload
	// names it by id rather than by number (Meta's phone_number_id): the
	// gateway maps it to the pool number whose entry lists that id. To is
	// then "".
	ToID string
	// SenderHidden is true when the provider withheld the sender's phone
	// number (a WhatsApp username: only a business-scoped user id, kept in
	// From as given). Such an event never verifies anything.
	SenderHidden bool
	// Attestation is a call's validated STIR/SHAKEN level ("A", "B", "C"),
	// or "" when the provider sent none or its validation failed.
	Attestation string
	// What the provider told about the sender, for the risk signals: the
	// line type normalised to one of the LineType constants ("" unknown),
	// the carrier's name, the sender's ISO country, and whether a WhatsApp
	// message was forwarded.
	LineType      string
	Carrier       string
	SenderCountry string
	Forwarded     bool
}

// Line types, normalised across providers (Inbound.LineType).
const (
	LineMobile   = "mobile"
	LineLandline = "landline"
	LineVoIP     = "voip"
	LineTollFree = "toll_free"
	LineOther    = "other" // a type the provider named that fits none of the above
)

// ChannelOf returns the inbound's channel, ChannelSMS for "".
func (m Inbound) ChannelOf() string {
	if m.Channel == "" {
		return ChannelSMS
	}
	return m.Channel
}

// Adapter authenticates and parses one provider's inbound webhooks.
type Adapter interface {
	// Verify checks the request's signature or credentials. Its errors wrap
	// ErrUnauthenticated and never contain a secret.
	Verify(r *Request) error
	// Parse turns a verified request into messages; one request may carry
	// several. A request that carries no SMS (a status event, another
	// channel) yields none and no error. Errors wrap ErrMalformed.
	Parse(r *Request) ([]Inbound, error)
}

// Acker is implemented by adapters whose provider expects a particular 2xx body.
// The body may be shared by every call: callers must not modify it.
type Acker interface {
	Ack() (status int, contentType string, body []byte)
}

// Signer is implemented by adapters that can produce a correctly signed
// webhook, as their provider would send it, for `mogate sms simulate` and
// for the conformance suite. target is the full public URL to sign for.
type Signer interface {
	Sign(m Inbound, target *url.URL, now time.Time) (*Request, error)
}

// Resigner is implemented by adapters that can sign an arbitrary request as
// their provider would: it replaces any signature (and, for schemes that sign
// a time, the timestamp) in r for r's URL, method and body at now. The
// conformance suite re-signs its recorded requests with it.
type Resigner interface {
	Resign(r *Request, now time.Time) error
}

// Handshaker is implemented by adapters whose provider checks the endpoint
// with a GET before it sends anything (Meta's hub.challenge). The gateway
// hands it a GET /webhooks/{name} and answers with what it returns; no
// signature is involved, so Handshake itself authenticates (a shared token)
// and must compare in constant time.
type Handshaker interface {
	Handshake(r *Request) (status int, contentType string, body []byte)
}

// Confirmer is implemented by adapters whose provider asks the endpoint to
// confirm a subscription (AWS SNS): for a verified request it returns the
// URL the gateway must GET, or "".
type Confirmer interface {
	SubscribeURL(r *Request) string
}

// Noncer is implemented by adapters whose requests carry a one-time nonce
// that a signature may cover without covering the body (Plivo V2). Nonce
// returns a verified request's nonce ("" for none) and whether the checked
// signature covers the body. The gateway spends every nonce durably and
// refuses a request whose body is not signed when its nonce is spent.
type Noncer interface {
	Nonce(r *Request) (nonce string, bodySigned bool)
}

var (
	// ErrUnauthenticated is wrapped by every Verify failure.
	ErrUnauthenticated = errors.New("adapters: unauthenticated")
	// ErrMissingSignature is wrapped when the request carries no signature at all (401).
	ErrMissingSignature = errors.New("adapters: missing signature")
	// ErrMalformed is wrapped by every Parse failure.
	ErrMalformed = errors.New("adapters: malformed payload")
)

// Unauthenticated returns an error that wraps ErrUnauthenticated with a
// reason. The reason must not contain a secret.
func Unauthenticated(reason string) error { return &authError{reason: reason} }

// Missing returns an error for a request without any signature; it wraps
// both ErrMissingSignature and ErrUnauthenticated.
func Missing(what string) error { return &authError{reason: what + " missing", missing: true} }

type authError struct {
	reason  string
	missing bool
}

func (e *authError) Error() string { return "adapters: unauthenticated: " + e.reason }

func (e *authError) Is(target error) bool {
	return target == ErrUnauthenticated || (e.missing && target == ErrMissingSignature)
}

// Malformed returns an error that wraps ErrMalformed with a reason.
func Malformed(reason string) error { return &malformedError{reason} }

type malformedError struct{ reason string }

func (e *malformedError) Error() string        { return "adapters: malformed payload: " + e.reason }
func (e *malformedError) Is(target error) bool { return target == ErrMalformed }

// E164 adds the leading + to a number given as international digits and
// strips the formatting characters some providers keep. Anything that is not
// a number (an alphanumeric sender, a short code with letters) is returned
// trimmed but otherwise unchanged.
func E164(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	plus := strings.HasPrefix(s, "+")
	if plus && digitsOnly(s[1:]) {
		return s // already E.164: what the mapping below returns, without building it
	}
	digits := strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return r
		case r == ' ' || r == '-' || r == '(' || r == ')' || r == '.' || (r == '+' && plus):
			return -1
		}
		return 'x'
	}, s)
	if digits == "" || strings.ContainsRune(digits, 'x') {
		return s
	}
	if strings.HasPrefix(digits, "00") && !plus {
		digits = digits[2:]
	}
	return "+" + digits
}

// digitsOnly reports whether s is ASCII digits only ("" is).
func digitsOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// SortedKeys returns the keys of v in byte order.
func SortedKeys(v url.Values) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// CheckTimestamp checks a signed unix-seconds timestamp: well formed and
// within window of now, either way (a replayed or pre-dated request fails).
func CheckTimestamp(ts string, now time.Time, window time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return Unauthenticated("timestamp is not unix seconds")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return Unauthenticated("timestamp outside the " + window.String() + " window")
	}
	return nil
}

// RandomHex returns n random bytes in hex, for message ids of signed test requests.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// FirstValues reads a form, refusing a repeated key among names: signature
// schemes that keep only the first value of a key (twilio-go, plivo-go)
// leave any later value unauthenticated, so a message must not depend on one.
func FirstValues(v url.Values, names ...string) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, n := range names {
		vs := v[n]
		if len(vs) > 1 {
			return nil, Malformed("repeated parameter " + n)
		}
		if len(vs) == 1 {
			out[n] = vs[0]
		}
	}
	return out, nil
}
