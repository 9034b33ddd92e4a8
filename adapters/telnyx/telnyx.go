// Package telnyx authenticates and parses Telnyx Messaging API v2
// message.received webhooks (JSON) and TeXML voice requests (a form with
// CallSid), which are always answered with a <Reject>.
//
// Signature scheme, the same for both: telnyx-signature-ed25519 is the
// Base64 Ed25519 signature, by the account's key pair, of telnyx-timestamp
// + "|" + the raw body (the form body as sent, for TeXML); the timestamp
// must be within 5 minutes of now, either way. Defined at
// https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks;
// the TeXML parameters are those of Telnyx's API reference, "TeXML call
// initiated".
package telnyx

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Headers and window.
const (
	SignatureHeader = "telnyx-signature-ed25519"
	TimestampHeader = "telnyx-timestamp"
	Tolerance       = 5 * time.Minute
)

// Config is a telnyx provider entry.
type Config struct {
	Name      string
	PublicKey string // base64, 32 bytes
	// PrivateKey (base64 32-byte seed) is only for playing Telnyx: Sign and Resign.
	PrivateKey string
	Now        func() time.Time
}

// Adapter handles one Telnyx account.
type Adapter struct {
	name string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	now  func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	pub, err := base64.StdEncoding.DecodeString(c.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("telnyx: public_key must be the base64 of a 32-byte Ed25519 public key")
	}
	a := &Adapter{name: c.Name, pub: pub, now: c.Now}
	if a.now == nil {
		a.now = time.Now
	}
	if c.PrivateKey != "" {
		seed, err := base64.StdEncoding.DecodeString(c.PrivateKey)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, errors.New("telnyx: private key must be a base64 32-byte seed")
		}
		a.priv = ed25519.NewKeyFromSeed(seed)
	}
	return a, nil
}

// MaxSkew is the accepted distance of telnyx-timestamp from now.
func (a *Adapter) MaxSkew() time.Duration { return Tolerance }

// Verify checks the Ed25519 signature and the timestamp window.
func (a *Adapter) Verify(r *adapters.Request) error {
	sigB64, ts := r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)
	if sigB64 == "" || ts == "" {
		return adapters.Missing(SignatureHeader + " and " + TimestampHeader)
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return adapters.Unauthenticated("signature is not a base64 Ed25519 signature")
	}
	if !ed25519.Verify(a.pub, signed(ts, r.Body), sig) {
		return adapters.Unauthenticated("signature mismatch")
	}
	return adapters.CheckTimestamp(ts, a.now(), Tolerance)
}

func signed(ts string, body []byte) []byte {
	return append([]byte(ts+"|"), body...)
}

type phone struct {
	PhoneNumber string `json:"phone_number"`
	Carrier     string `json:"carrier"`
	LineType    string `json:"line_type"`
}

type envelope struct {
	Data struct {
		EventType string `json:"event_type"`
		ID        string `json:"id"`
		Payload   struct {
			ID         string  `json:"id"`
			Type       string  `json:"type"`
			Direction  string  `json:"direction"`
			From       phone   `json:"from"`
			To         []phone `json:"to"`
			Text       string  `json:"text"`
			Parts      int     `json:"parts"`
			ReceivedAt string  `json:"received_at"`
		} `json:"payload"`
	} `json:"data"`
}

// Parse reads message.received events of type SMS or MMS (or none), with
// the sender's line type (normalised) and carrier; other event types, and
// messages of other types (WhatsApp, RCS), yield nothing. A message to
// several of the account's numbers yields one message per number, each
// with its own id (message id + "/" + number). A form body is a TeXML
// voice request (parseCall).
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	if !isJSON(r.Body) {
		return a.parseCall(r)
	}
	var e envelope
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if e.Data.EventType != "message.received" {
		return nil, nil
	}
	p := e.Data.Payload
	if t := strings.ToUpper(strings.TrimSpace(p.Type)); t != "" && t != "SMS" && t != "MMS" {
		// Another channel's message on the messaging webhook (WhatsApp,
		// RCS): not an SMS, and its sender may be no phone number. Nothing
		// until Telnyx's payload for it is known and supported.
		return nil, nil
	}
	from := adapters.E164(p.From.PhoneNumber)
	switch {
	case strings.TrimSpace(p.ID) == "":
		return nil, adapters.Malformed("no payload.id")
	case from == "":
		return nil, adapters.Malformed("no payload.from.phone_number")
	case len(p.To) == 0:
		return nil, adapters.Malformed("no payload.to")
	}
	received := a.now().UTC()
	if t, err := time.Parse(time.RFC3339Nano, p.ReceivedAt); err == nil {
		received = t.UTC()
	}
	var out []adapters.Inbound
	for _, to := range p.To {
		n := adapters.E164(to.PhoneNumber)
		if n == "" {
			return nil, adapters.Malformed("empty payload.to entry")
		}
		id := p.ID
		if len(p.To) > 1 {
			id += "/" + n
		}
		in := adapters.Inbound{Provider: a.name, MessageID: id, From: from, To: n, Text: p.Text, ReceivedAt: received, Raw: r.Body,
			LineType: adapters.NormalizeLineType(p.From.LineType), Carrier: strings.TrimSpace(p.From.Carrier)}
		if p.Parts > 1 {
			in.Parts = p.Parts
		}
		out = append(out, in)
	}
	return out, nil
}

// Resign signs r at now with the private key.
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	if a.priv == nil {
		return errors.New("telnyx: signing needs the account's private key, which only Telnyx has")
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	r.Header.Set(TimestampHeader, ts)
	r.Header.Set(SignatureHeader, base64.StdEncoding.EncodeToString(ed25519.Sign(a.priv, signed(ts, r.Body))))
	return nil
}

// Sign returns the message.received webhook Telnyx would send for m, with
// m's line type and carrier on the sender, or for a call (m.Channel call)
// the TeXML voice request (signTeXML).
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	if m.Channel == adapters.ChannelCall {
		return a.signTeXML(m, target, now)
	}
	from := map[string]string{"phone_number": m.From}
	if m.LineType != "" {
		from["line_type"] = telnyxLineType(m.LineType)
	}
	if m.Carrier != "" {
		from["carrier"] = m.Carrier
	}
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(16)
	}
	body, err := json.Marshal(map[string]any{"data": map[string]any{
		"record_type": "event", "id": adapters.RandomHex(16), "event_type": "message.received",
		"occurred_at": now.UTC().Format(time.RFC3339Nano),
		"payload": map[string]any{
			"record_type": "message", "direction": "inbound", "id": id, "type": "SMS",
			"from": from, "to": []map[string]string{{"phone_number": m.To, "status": "delivered"}},
			"text": m.Text, "parts": 1, "received_at": now.UTC().Format(time.RFC3339Nano),
		},
	}})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	return r, a.Resign(r, now)
}
