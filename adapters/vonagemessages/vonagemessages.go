// Package vonagemessages authenticates and parses Vonage Messages API
// inbound webhooks for the SMS and WhatsApp channels (provider type
// "vonage-messages"; Go package names cannot hold a hyphen).
//
// A WhatsApp message (`channel: "whatsapp"`) is the whatsapp channel. When
// Meta withholds the sender's phone number (a WhatsApp username), Vonage
// leaves `whatsapp.sender.wa_id` out and gives a business-scoped
// `user_id`: such a message, or one whose `from` is not a phone number, is
// marked SenderHidden and never verifies anything.
//
// Signature scheme: `Authorization: Bearer <JWT>`, HS256 only, keyed with the
// account signature secret. The `payload_hash` claim must equal the hex
// SHA-256 of the raw body, and `iat` must be within 5 minutes of now (the
// token has no `exp`). Defined at
// https://developer.vonage.com/en/getting-started/concepts/webhooks#signed-webhooks.
package vonagemessages

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/mogate/mogate/adapters"
)

// MaxSkew is how far `iat` may be from now, either way.
const MaxSkew = 5 * time.Minute

// Config is a vonage-messages provider entry.
type Config struct {
	Name            string
	SignatureSecret string
	APIKey          string // optional: when set, tokens for other accounts are refused
	Now             func() time.Time
}

// Adapter handles one Vonage account's Messages API webhooks.
type Adapter struct {
	name, secret, apiKey string
	now                  func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.SignatureSecret == "" {
		return nil, errors.New("vonagemessages: signature_secret is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, secret: c.SignatureSecret, apiKey: c.APIKey, now: c.Now}, nil
}

// VerifyToken checks the JWT's HS256 signature with secret and returns its
// claims; it checks no claim.
func VerifyToken(token, secret string, now time.Time) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
	return claims, err
}

// Verify checks the bearer token, its payload_hash against the body and its iat.
func (a *Adapter) Verify(r *adapters.Request) error {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || token == "" {
		return adapters.Missing("Authorization bearer token")
	}
	now := a.now()
	claims, err := VerifyToken(token, a.secret, now)
	if err != nil {
		return adapters.Unauthenticated("token signature, algorithm or time claims invalid")
	}
	iat, err := claims.GetIssuedAt()
	if err != nil || iat == nil {
		return adapters.Unauthenticated("token without iat")
	}
	if d := now.Sub(iat.Time); d > MaxSkew || d < -MaxSkew {
		return adapters.Unauthenticated("iat outside the 5 minute window")
	}
	want, _ := claims["payload_hash"].(string)
	sum := sha256.Sum256(r.Body)
	got, err := hex.DecodeString(strings.ToLower(want))
	if err != nil || subtle.ConstantTimeCompare(got, sum[:]) != 1 {
		return adapters.Unauthenticated("payload_hash does not match the body")
	}
	if a.apiKey != "" {
		if k, _ := claims["api_key"].(string); k != a.apiKey {
			return adapters.Unauthenticated("token of another account")
		}
	}
	return nil
}

type message struct {
	UUID        string `json:"message_uuid"`
	To          string `json:"to"`
	From        string `json:"from"`
	Timestamp   string `json:"timestamp"`
	Channel     string `json:"channel"`
	MessageType string `json:"message_type"`
	Text        string `json:"text"`
	SMS         struct {
		NumMessages json.RawMessage `json:"num_messages"`
	} `json:"sms"`
	WhatsApp struct {
		Sender *struct {
			UserID string `json:"user_id"`
			WaID   string `json:"wa_id"`
		} `json:"sender"`
	} `json:"whatsapp"`
}

// Parse reads an inbound SMS or WhatsApp text; other channels and message
// types yield nothing.
// Vonage hands over long messages concatenated; sms.num_messages says how many
// parts they came in.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var m message
	if err := json.Unmarshal(r.Body, &m); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if m.Channel != "" && m.Channel != "sms" && m.Channel != "whatsapp" || m.MessageType != "" && m.MessageType != "text" {
		return nil, nil
	}
	id, from, to := strings.TrimSpace(m.UUID), adapters.E164(m.From), adapters.E164(m.To)
	switch {
	case id == "":
		return nil, adapters.Malformed("no message_uuid")
	case from == "":
		return nil, adapters.Malformed("no from")
	case to == "":
		return nil, adapters.Malformed("no to")
	}
	in := adapters.Inbound{
		Provider: a.name, MessageID: id, From: from, To: to,
		Text: m.Text, ReceivedAt: a.now().UTC(), Raw: r.Body,
	}
	if m.Channel == "whatsapp" {
		in.Channel = adapters.ChannelWhatsApp
		// The phone number withheld: wa_id left out, or a from that is no number.
		if s := m.WhatsApp.Sender; !strings.HasPrefix(from, "+") || s != nil && s.WaID == "" && s.UserID != "" {
			in.SenderHidden = true
			if s != nil && s.UserID != "" {
				in.From = strings.TrimSpace(s.UserID)
			}
		}
	}
	if t, err := time.Parse(time.RFC3339, m.Timestamp); err == nil {
		in.ReceivedAt = t.UTC()
	}
	if n, err := strconv.Atoi(strings.Trim(string(m.SMS.NumMessages), `"`)); err == nil && n > 1 {
		in.Parts = n
	}
	return []adapters.Inbound{in}, nil
}

// Sign returns the JSON POST Vonage would send for m, with its signed JWT.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		h := adapters.RandomHex(16)
		id = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	msg := map[string]any{
		"message_uuid": id, "to": strings.TrimPrefix(m.To, "+"), "from": strings.TrimPrefix(m.From, "+"),
		"timestamp": now.UTC().Format(time.RFC3339), "channel": "sms", "message_type": "text", "text": m.Text,
		"sms": map[string]string{"num_messages": "1"},
	}
	if m.Channel == adapters.ChannelWhatsApp {
		delete(msg, "sms")
		msg["channel"] = "whatsapp"
		sender := map[string]string{"wa_id": strings.TrimPrefix(m.From, "+")}
		if m.SenderHidden {
			sender = map[string]string{"user_id": m.From}
		}
		msg["whatsapp"] = map[string]any{"sender": sender}
		msg["profile"] = map[string]string{"name": "mogate"}
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: h, Body: body}
	return r, a.Resign(r, now)
}

// Resign sets a fresh bearer JWT (HS256, iat = now, payload_hash of the body).
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	sum := sha256.Sum256(r.Body)
	claims := jwt.MapClaims{"iat": now.Unix(), "jti": adapters.RandomHex(16), "iss": "Vonage", "payload_hash": hex.EncodeToString(sum[:])}
	if a.apiKey != "" {
		claims["api_key"] = a.apiKey
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(a.secret))
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+token)
	return nil
}

// MaxSkew is the accepted distance of `iat` from now.
func (a *Adapter) MaxSkew() time.Duration { return MaxSkew }
