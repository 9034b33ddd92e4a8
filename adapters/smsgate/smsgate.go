// Package smsgate authenticates and parses webhooks of the SMS Gateway for
// Android app (capcom6/android-sms-gateway, sms-gate.app): a phone that
// forwards the SMS it receives.
//
// Signature scheme: X-Signature is the lowercase hex HMAC-SHA256, keyed with
// the app's signing key, of the raw body immediately followed by the
// X-Timestamp value (unix seconds), which must be within 5 minutes of now.
// Defined at https://docs.sms-gate.app/features/webhooks/ (payload signing).
//
// Senders arrive as the handset shows them — often national ("6505551212");
// they are passed on as given and the gateway resolves them with the
// receiving number's country. The receiving number is often null: the
// gateway then takes the provider entry's number. Deduplication uses the
// envelope id, since payload.messageId is derived from the content.
package smsgate

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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
	SignatureHeader = "X-Signature"
	TimestampHeader = "X-Timestamp"
	Tolerance       = 5 * time.Minute
)

// Config is an smsgate provider entry.
type Config struct {
	Name, SigningKey string
	Now              func() time.Time
}

// Adapter handles one phone (or one signing key).
type Adapter struct {
	name, key string
	now       func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.SigningKey == "" {
		return nil, errors.New("smsgate: signing_key is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, key: c.SigningKey, now: c.Now}, nil
}

// MaxSkew is the accepted distance of X-Timestamp from now.
func (a *Adapter) MaxSkew() time.Duration { return Tolerance }

// Signature computes the hex signature of body at timestamp.
func Signature(key string, body []byte, timestamp string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	m.Write([]byte(timestamp))
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks the signature and the timestamp window.
func (a *Adapter) Verify(r *adapters.Request) error {
	sig, ts := r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)
	if sig == "" || ts == "" {
		return adapters.Missing(SignatureHeader + " and " + TimestampHeader)
	}
	got, err := hex.DecodeString(strings.ToLower(sig))
	want, _ := hex.DecodeString(Signature(a.key, r.Body, ts))
	if err != nil || !hmac.Equal(got, want) {
		return adapters.Unauthenticated("signature mismatch")
	}
	return adapters.CheckTimestamp(ts, a.now(), Tolerance)
}

type envelope struct {
	ID      string `json:"id"`
	Event   string `json:"event"`
	Payload struct {
		MessageID   string  `json:"messageId"`
		Message     string  `json:"message"`
		Sender      string  `json:"sender"`
		PhoneNumber string  `json:"phoneNumber"`
		Recipient   *string `json:"recipient"`
		ReceivedAt  string  `json:"receivedAt"`
	} `json:"payload"`
}

// Parse reads sms:received events; other events yield nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var e envelope
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if e.Event != "sms:received" {
		return nil, nil
	}
	p := e.Payload
	sender := strings.TrimSpace(p.Sender)
	if sender == "" {
		sender = strings.TrimSpace(p.PhoneNumber)
	}
	if strings.HasPrefix(sender, "+") {
		sender = adapters.E164(sender)
	}
	switch {
	case strings.TrimSpace(e.ID) == "":
		return nil, adapters.Malformed("no id")
	case sender == "":
		return nil, adapters.Malformed("no sender")
	}
	to := ""
	if p.Recipient != nil {
		to = adapters.E164(*p.Recipient)
	}
	received := a.now().UTC()
	if t, err := time.Parse("2006-01-02T15:04:05.000-07:00", p.ReceivedAt); err == nil {
		received = t.UTC()
	}
	return []adapters.Inbound{{Provider: a.name, MessageID: e.ID, From: sender, To: to, Text: p.Message, ReceivedAt: received, Raw: r.Body}}, nil
}

// Resign sets X-Timestamp to now and a fresh signature.
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	ts := strconv.FormatInt(now.Unix(), 10)
	r.Header.Set(TimestampHeader, ts)
	r.Header.Set(SignatureHeader, Signature(a.key, r.Body, ts))
	return nil
}

// Sign returns the sms:received webhook the app would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(10)
	}
	var recipient any
	if m.To != "" {
		recipient = m.To
	}
	b, err := json.Marshal(map[string]any{
		"deviceId": "ffffffffceb0b1db0000018e937c815b", "event": "sms:received", "id": id, "webhookId": "mogate",
		"payload": map[string]any{"messageId": adapters.RandomHex(4), "message": m.Text, "sender": m.From, "phoneNumber": m.From,
			"recipient": recipient, "simNumber": 1, "receivedAt": now.Format("2006-01-02T15:04:05.000-07:00")},
	})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
	return r, a.Resign(r, now)
}
