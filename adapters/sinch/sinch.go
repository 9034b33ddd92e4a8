// Package sinch authenticates and parses Sinch SMS REST API inbound
// callbacks (mo_text, mo_binary, mo_media).
//
// Signature scheme (HMAC, configured per service plan): the
// x-sinch-webhook-signature header is the Base64 HMAC-SHA256, keyed with the
// webhook secret, of the raw body + "." + x-sinch-webhook-signature-nonce +
// "." + x-sinch-webhook-signature-timestamp. The algorithm header must say
// HmacSHA256 (it is pinned, never followed), and the timestamp must be within
// 5 minutes of now. Defined by the official SDKs (sinch-sdk-java
// HmacAuthenticationValidation, sinch-sdk-node authorization.helper) and
// https://developers.sinch.com/docs/sms/api-reference/sms/tag/Webhooks/.
package sinch

import (
	"crypto/hmac"
	"crypto/sha256"
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
	SignatureHeader = "x-sinch-webhook-signature"
	AlgorithmHeader = "x-sinch-webhook-signature-algorithm"
	NonceHeader     = "x-sinch-webhook-signature-nonce"
	TimestampHeader = "x-sinch-webhook-signature-timestamp"
	Tolerance       = 5 * time.Minute
)

// Config is a sinch provider entry.
type Config struct {
	Name          string
	WebhookSecret string
	Now           func() time.Time
}

// Adapter handles one Sinch service plan.
type Adapter struct {
	name, secret string
	now          func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.WebhookSecret == "" {
		return nil, errors.New("sinch: webhook_secret is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, secret: c.WebhookSecret, now: c.Now}, nil
}

// MaxSkew is the accepted distance of the signature timestamp from now.
func (a *Adapter) MaxSkew() time.Duration { return Tolerance }

// Signature computes the Base64 signature of body, nonce and timestamp.
func Signature(secret string, body []byte, nonce, timestamp string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	m.Write([]byte("." + nonce + "." + timestamp))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify checks the signature, the pinned algorithm and the timestamp window.
func (a *Adapter) Verify(r *adapters.Request) error {
	sig, nonce, ts := r.Header.Get(SignatureHeader), r.Header.Get(NonceHeader), r.Header.Get(TimestampHeader)
	if sig == "" {
		return adapters.Missing(SignatureHeader)
	}
	if !strings.EqualFold(r.Header.Get(AlgorithmHeader), "HmacSHA256") {
		return adapters.Unauthenticated("algorithm is not HmacSHA256")
	}
	if nonce == "" || ts == "" {
		return adapters.Unauthenticated("nonce or timestamp missing")
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	want, _ := base64.StdEncoding.DecodeString(Signature(a.secret, r.Body, nonce, ts))
	if err != nil || !hmac.Equal(got, want) {
		return adapters.Unauthenticated("signature mismatch")
	}
	return adapters.CheckTimestamp(ts, a.now(), Tolerance)
}

type inbound struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	From       string          `json:"from"`
	To         string          `json:"to"`
	Body       json.RawMessage `json:"body"`
	ReceivedAt string          `json:"received_at"`
}

// Parse reads mo_text (and the message of mo_media); mo_binary and other
// callbacks carry no text and yield nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var m inbound
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	var text string
	switch m.Type {
	case "mo_text":
		if err := json.Unmarshal(m.Body, &text); err != nil {
			return nil, adapters.Malformed("mo_text body is not a string")
		}
	case "mo_media":
		var media struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(m.Body, &media); err != nil {
			return nil, adapters.Malformed("mo_media body is not an object")
		}
		text = media.Message
	default:
		return nil, nil
	}
	from, to := adapters.E164(m.From), adapters.E164(m.To)
	switch {
	case strings.TrimSpace(m.ID) == "":
		return nil, adapters.Malformed("no id")
	case from == "":
		return nil, adapters.Malformed("no from")
	case to == "":
		return nil, adapters.Malformed("no to")
	}
	received := a.now().UTC()
	if t, err := time.Parse(time.RFC3339Nano, m.ReceivedAt); err == nil {
		received = t.UTC()
	}
	return []adapters.Inbound{{Provider: a.name, MessageID: m.ID, From: from, To: to, Text: text, ReceivedAt: received, Raw: r.Body}}, nil
}

// Resign sets a fresh nonce, timestamp and signature.
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	nonce, ts := strings.ToUpper(adapters.RandomHex(13)), strconv.FormatInt(now.Unix(), 10)
	r.Header.Set(AlgorithmHeader, "HmacSHA256")
	r.Header.Set(NonceHeader, nonce)
	r.Header.Set(TimestampHeader, ts)
	r.Header.Set(SignatureHeader, Signature(a.secret, r.Body, nonce, ts))
	return nil
}

// Sign returns the mo_text callback Sinch would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = strings.ToUpper(adapters.RandomHex(13))
	}
	body, err := json.Marshal(map[string]string{
		"type": "mo_text", "id": id, "from": strings.TrimPrefix(m.From, "+"), "to": strings.TrimPrefix(m.To, "+"),
		"body": m.Text, "received_at": now.UTC().Format("2006-01-02T15:04:05.000Z"), "operator_id": "35000",
	})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	return r, a.Resign(r, now)
}
