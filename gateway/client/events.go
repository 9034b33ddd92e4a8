package client

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Event types mogate sends. The verification.* events and message.unmatched
// are signed with Standard Webhooks headers; otp.reverse.verified, sent for
// sessions created through the Contiguity-compatible API, with
// Contiguity-Signature.
const (
	EventVerified           = "verification.verified"
	EventExpired            = "verification.expired"
	EventFailed             = "verification.failed"
	EventCancelled          = "verification.cancelled"
	EventUnmatched          = "message.unmatched"
	EventOTPReverseVerified = "otp.reverse.verified"
)

// EventTolerance is how far an event's signed timestamp may be from now,
// either way, for VerifyEvent to accept it: older is a replay, newer a
// forgery or a clock to fix.
const EventTolerance = 5 * time.Minute

// Errors of VerifyEvent. Answer any of them with a 4xx and act on nothing.
var (
	// ErrNoSignature: neither webhook-signature nor Contiguity-Signature.
	ErrNoSignature = errors.New("mogate: event: no signature header")
	// ErrBadSignature: a signature header that is malformed or matches
	// no signature of the body with the secret.
	ErrBadSignature = errors.New("mogate: event: bad signature")
	// ErrStale: the signed timestamp is more than EventTolerance from now.
	ErrStale = errors.New("mogate: event: timestamp outside the tolerance")
	// ErrBadSecret: the secret is not whsec_ followed by base64.
	ErrBadSecret = errors.New("mogate: event: webhook secret is not whsec_<base64>")
	// ErrBadPayload: the signature holds, but the body is not the JSON of
	// its event type.
	ErrBadPayload = errors.New("mogate: event: undecodable body")
)

// Event is a verified event. Exactly one of Verification, Unmatched and
// OTP is set for the types above; for a type this client does not know
// (a newer mogate), none is, and Body has the JSON.
type Event struct {
	// ID is the same on every delivery of the event (webhook-id, or the
	// body's id for otp.reverse.verified): act on each ID once.
	ID        string
	Type      string
	Timestamp time.Time // the signed timestamp
	// Verification is the verification at its final status
	// (verification.* events), as GET /v1/verifications/{id} shows it.
	Verification *Verification
	Unmatched    *UnmatchedMessage // message.unmatched
	OTP          *ReverseOTP       // otp.reverse.verified
	Body         []byte            // the raw body
}

// VerificationEvent is the body of a verification.* event.
type VerificationEvent struct {
	Type      string       `json:"type"`
	Timestamp time.Time    `json:"timestamp"`
	Data      Verification `json:"data"`
}

// UnmatchedEvent is the body of a message.unmatched event.
type UnmatchedEvent struct {
	Type      string           `json:"type"`
	Timestamp time.Time        `json:"timestamp"`
	Data      UnmatchedMessage `json:"data"`
}

// UnmatchedMessage is an inbound message that verified nothing, sent to the
// API keys with unmatched_events.
type UnmatchedMessage struct {
	Provider   string    `json:"provider"` // the provider entry's name
	MessageID  string    `json:"message_id"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Text       string    `json:"text"`
	ReceivedAt time.Time `json:"received_at"`
}

// ContiguityEvent is the body of an otp.reverse.verified event, in
// Contiguity's envelope.
type ContiguityEvent struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	Timestamp  int64      `json:"timestamp"` // Unix seconds
	APIVersion string     `json:"api_version"`
	Data       ReverseOTP `json:"data"`
}

// ReverseOTP is the data of otp.reverse.verified: Contiguity's fields and
// mogate's channel, route number and signals.
type ReverseOTP struct {
	OTPID   string   `json:"otp_id"`
	Number  string   `json:"number"`
	Status  string   `json:"status"` // "verified"
	Channel string   `json:"channel"`
	RouteTo string   `json:"route_to"`
	Signals *Signals `json:"signals"`
}

// VerifyEvent checks the signature of an event mogate sent and decodes it.
// secret is the API key's webhook_secret (whsec_…), header and body the
// request's, body exactly as read (not re-encoded). It accepts the
// Standard Webhooks scheme (webhook-id, webhook-timestamp,
// webhook-signature: one or more space-separated "v1,<base64 HMAC-SHA256
// of id.timestamp.body>", keyed with the base64-decoded secret) and
// Contiguity's (Contiguity-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
// t.body>, keyed with the secret string as given), comparing in constant
// time, with a signed timestamp at most EventTolerance from now either way.
// The caller still drops repeats by Event.ID: a captured event replays
// within the tolerance.
func VerifyEvent(secret string, header http.Header, body []byte) (Event, error) {
	return verifyEvent(secret, header, body, time.Now())
}

func verifyEvent(secret string, header http.Header, body []byte, now time.Time) (Event, error) {
	var ev Event
	var err error
	switch {
	case header.Get("webhook-signature") != "":
		ev, err = verifyStandard(secret, header, body)
	case header.Get("Contiguity-Signature") != "":
		ev, err = verifyContiguity(secret, header.Get("Contiguity-Signature"), body)
	default:
		return Event{}, ErrNoSignature
	}
	if err != nil {
		return Event{}, err
	}
	if d := now.Sub(ev.Timestamp); d > EventTolerance || d < -EventTolerance {
		return Event{}, ErrStale
	}
	ev.Body = body
	if err := decodeEvent(&ev); err != nil {
		return Event{}, err
	}
	return ev, nil
}

func verifyStandard(secret string, header http.Header, body []byte) (Event, error) {
	id, ts := header.Get("webhook-id"), header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		return Event{}, fmt.Errorf("%w: webhook-id and webhook-timestamp are required", ErrBadSignature)
	}
	t, err := unix(ts)
	if err != nil {
		return Event{}, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return Event{}, ErrBadSecret
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, sig := range strings.Fields(header.Get("webhook-signature")) {
		version, value, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" {
			continue // another scheme (v1a) or version: not ours to check
		}
		if got, err := base64.StdEncoding.DecodeString(value); err == nil && hmac.Equal(got, want) {
			return Event{ID: id, Timestamp: t}, nil
		}
	}
	return Event{}, ErrBadSignature
}

func verifyContiguity(secret, header string, body []byte) (Event, error) {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return Event{}, fmt.Errorf("%w: Contiguity-Signature needs t= and v1=", ErrBadSignature)
	}
	t, err := unix(ts)
	if err != nil {
		return Event{}, err
	}
	if secret == "" {
		return Event{}, ErrBadSecret
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	want := m.Sum(nil)
	for _, sig := range sigs {
		if got, err := hex.DecodeString(sig); err == nil && hmac.Equal(got, want) {
			return Event{Timestamp: t}, nil
		}
	}
	return Event{}, ErrBadSignature
}

func unix(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrBadSignature, s)
	}
	return time.Unix(n, 0), nil
}

// decodeEvent fills ev's type and typed data from its body.
func decodeEvent(ev *Event) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(ev.Body, &head); err != nil {
		return fmt.Errorf("%w: %w", ErrBadPayload, err)
	}
	ev.Type = head.Type
	var err error
	switch {
	case strings.HasPrefix(ev.Type, "verification."):
		var b VerificationEvent
		err = json.Unmarshal(ev.Body, &b)
		ev.Verification = &b.Data
	case ev.Type == EventUnmatched:
		var b UnmatchedEvent
		err = json.Unmarshal(ev.Body, &b)
		ev.Unmatched = &b.Data
	case ev.Type == EventOTPReverseVerified:
		var b ContiguityEvent
		err = json.Unmarshal(ev.Body, &b)
		ev.OTP, ev.ID = &b.Data, b.ID
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadPayload, ev.Type, err)
	}
	return nil
}
