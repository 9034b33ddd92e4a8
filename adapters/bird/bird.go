// Package bird authenticates and parses inbound SMS webhooks of Bird
// (formerly MessageBird).
//
// Two signature schemes are accepted:
//   - MessageBird-Signature-JWT (legacy MessageBird,
//     github.com/messagebird/go-rest-api signature_jwt): a JWT signed with the
//     signing key (HS256, HS384 or HS512 only; "none" and others refused),
//     iss MessageBird, nbf/exp with 1 s of skew, a jti, url_hash = hex SHA-256
//     of the full URL, and payload_hash = hex SHA-256 of the body, present
//     exactly when the body is not empty.
//   - messagebird-signature with messagebird-request-timestamp (Bird,
//     https://docs.bird.com/api/notifications-api/api-reference/webhooks/verifying-a-webhook):
//     Base64 HMAC-SHA256 of timestamp + "\n" + the full URL + "\n" + the raw
//     32-byte SHA-256 of the body; the timestamp must be within 5 minutes.
//
// Bird's sms.inbound payload does not carry the receiving number: the
// gateway takes it from the provider entry's number.
package bird

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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

// Headers and window.
const (
	JWTHeader       = "MessageBird-Signature-JWT"
	SignatureHeader = "messagebird-signature"
	TimestampHeader = "messagebird-request-timestamp"
	Tolerance       = 5 * time.Minute
)

// Config is a bird provider entry.
type Config struct {
	Name, SigningKey string
	Now              func() time.Time
}

// Adapter handles one Bird workspace or MessageBird account.
type Adapter struct {
	name, key string
	now       func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.SigningKey == "" {
		return nil, errors.New("bird: signing_key is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, key: c.SigningKey, now: c.Now}, nil
}

// MaxSkew is the accepted distance of the request timestamp from now.
func (a *Adapter) MaxSkew() time.Duration { return Tolerance }

// Verify checks whichever scheme the request carries.
func (a *Adapter) Verify(r *adapters.Request) error {
	if tok := r.Header.Get(JWTHeader); tok != "" {
		return VerifyJWT(tok, a.key, r.URL.String(), r.Body, a.now())
	}
	sig, ts := r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)
	if sig == "" || ts == "" {
		return adapters.Missing(JWTHeader + " or " + SignatureHeader)
	}
	got, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, HMAC(a.key, ts, r.URL.String(), r.Body)) {
		return adapters.Unauthenticated("signature mismatch")
	}
	return adapters.CheckTimestamp(ts, a.now(), Tolerance)
}

// HMAC computes Bird's signature bytes.
func HMAC(key, timestamp, fullURL string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(timestamp + "\n" + fullURL + "\n"))
	m.Write(sum[:])
	return m.Sum(nil)
}

// VerifyJWT checks a MessageBird-Signature-JWT token for a request to
// fullURL with body at now.
func VerifyJWT(token, key, fullURL string, body []byte, now time.Time) error {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(key), nil },
		jwt.WithValidMethods([]string{"HS256", "HS384", "HS512"}), jwt.WithIssuer("MessageBird"),
		jwt.WithLeeway(time.Second), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithExpirationRequired())
	if err != nil {
		return adapters.Unauthenticated("token signature, algorithm, issuer or time claims invalid")
	}
	if nbf, err := claims.GetNotBefore(); err != nil || nbf == nil {
		return adapters.Unauthenticated("token without nbf")
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return adapters.Unauthenticated("token without jti")
	}
	if !hashClaim(claims["url_hash"], []byte(fullURL)) {
		return adapters.Unauthenticated("url_hash does not match the URL")
	}
	ph, present := claims["payload_hash"]
	switch {
	case len(body) == 0 && present:
		return adapters.Unauthenticated("payload_hash on an empty body")
	case len(body) > 0 && !hashClaim(ph, body):
		return adapters.Unauthenticated("payload_hash does not match the body")
	}
	return nil
}

func hashClaim(v any, data []byte) bool {
	s, _ := v.(string)
	got, err := hex.DecodeString(s)
	sum := sha256.Sum256(data)
	return err == nil && subtle.ConstantTimeCompare(got, sum[:]) == 1
}

type envelope struct {
	Event   string `json:"event"`
	Payload struct {
		ID     string `json:"id"`
		Sender struct {
			Contact struct {
				IdentifierValue string `json:"identifierValue"`
			} `json:"contact"`
		} `json:"sender"`
		Body struct {
			Type string `json:"type"`
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		} `json:"body"`
		CreatedAt string `json:"createdAt"`
	} `json:"payload"`
}

// Parse reads sms.inbound events; other events yield nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var e envelope
	if err := json.Unmarshal(r.Body, &e); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if e.Event != "sms.inbound" {
		return nil, nil
	}
	p := e.Payload
	from := adapters.E164(p.Sender.Contact.IdentifierValue)
	switch {
	case strings.TrimSpace(p.ID) == "":
		return nil, adapters.Malformed("no payload.id")
	case from == "":
		return nil, adapters.Malformed("no sender identifierValue")
	}
	received := a.now().UTC()
	if t, err := time.Parse(time.RFC3339Nano, p.CreatedAt); err == nil {
		received = t.UTC()
	}
	return []adapters.Inbound{{Provider: a.name, MessageID: p.ID, From: from, Text: p.Body.Text.Text, ReceivedAt: received, Raw: r.Body}}, nil
}

// Resign signs r at now: with a JWT when r already names the JWT header
// (even empty), with Bird's HMAC otherwise.
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	if _, jwtScheme := r.Header[http.CanonicalHeaderKey(JWTHeader)]; jwtScheme {
		claims := jwt.MapClaims{"iss": "MessageBird", "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": adapters.RandomHex(16)}
		u := sha256.Sum256([]byte(r.URL.String()))
		claims["url_hash"] = hex.EncodeToString(u[:])
		if len(r.Body) > 0 {
			p := sha256.Sum256(r.Body)
			claims["payload_hash"] = hex.EncodeToString(p[:])
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(a.key))
		if err != nil {
			return err
		}
		r.Header.Set(JWTHeader, tok)
		return nil
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	r.Header.Set(TimestampHeader, ts)
	r.Header.Set(SignatureHeader, base64.StdEncoding.EncodeToString(HMAC(a.key, ts, r.URL.String(), r.Body)))
	return nil
}

// Sign returns the sms.inbound webhook Bird would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(16)
	}
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z")
	b, err := json.Marshal(map[string]any{"service": "channels", "event": "sms.inbound", "payload": map[string]any{
		"id": id, "channelId": "614208aa-b153-4d5d-9989-2fddfc0ce4c3",
		"sender":   map[string]any{"contact": map[string]string{"id": adapters.RandomHex(8), "identifierKey": "phonenumber", "identifierValue": m.From}},
		"receiver": map[string]any{"connector": map[string]string{"id": "86cc4dc0-3dc0-41b7-ac43-8ec829ead56f"}},
		"body":     map[string]any{"type": "text", "text": map[string]string{"text": m.Text}},
		"status":   "delivered", "direction": "incoming", "createdAt": ts, "updatedAt": ts, "lastStatusAt": ts,
	}})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
	return r, a.Resign(r, now)
}
