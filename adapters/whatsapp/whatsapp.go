// Package whatsapp authenticates and parses Meta WhatsApp Cloud API webhooks
// (provider type "whatsapp"): the GET verification handshake and the POSTed
// message notifications.
//
// Signature scheme: `X-Hub-Signature-256: sha256=<lowercase hex
// HMAC-SHA256(app secret, raw body)>`, checked over the bytes as received
// (Meta signs its escaped-unicode JSON; re-serialising would break it). No
// time is signed, so redeliveries are caught by the wamid alone. The
// handshake is `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`,
// answered with C when T is the entry's verify token. Defined at
// https://developers.facebook.com/docs/graph-api/webhooks/getting-started
// (docs/configuration.md, "Channels").
//
// The receiving number arrives as metadata.phone_number_id (Inbound.ToID),
// never as a number the gateway could trust: display_phone_number may be
// formatted. A sender with a WhatsApp username may come without `from`,
// only with a business-scoped `from_user_id`: such a message is marked
// SenderHidden and never verifies anything.
package whatsapp

import (
	"crypto/hmac"
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

	"github.com/mogate/mogate/adapters"
)

// SignatureHeader carries the body's signature.
const SignatureHeader = "X-Hub-Signature-256"

// MaxChallenge is the longest hub.challenge echoed back (Meta sends a
// number of about ten digits; letters, digits and - _ . ~ are accepted, so
// that nothing echoed can be markup).
const MaxChallenge = 128

// Config is a whatsapp provider entry.
type Config struct {
	Name        string
	AppSecret   string // the Meta app's App Secret: keys the body signature
	VerifyToken string // the token the operator typed into Meta's webhook setup
	Now         func() time.Time
}

// Adapter handles one Meta app's webhooks (all the numbers of the app).
type Adapter struct {
	name, secret, token string
	now                 func() time.Time
}

var (
	_ adapters.Adapter    = (*Adapter)(nil)
	_ adapters.Handshaker = (*Adapter)(nil)
	_ adapters.Signer     = (*Adapter)(nil)
	_ adapters.Resigner   = (*Adapter)(nil)
)

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	switch {
	case c.AppSecret == "":
		return nil, errors.New("whatsapp: app_secret is required")
	case c.VerifyToken == "":
		return nil, errors.New("whatsapp: verify_token is required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, secret: c.AppSecret, token: c.VerifyToken, now: c.Now}, nil
}

// Signature returns the header value Meta sends for body: "sha256=" and the
// lowercase hex HMAC-SHA256 of body keyed with secret.
func Signature(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks X-Hub-Signature-256 over the raw body, in constant time.
func (a *Adapter) Verify(r *adapters.Request) error {
	v := r.Header.Get(SignatureHeader)
	if v == "" {
		return adapters.Missing(SignatureHeader)
	}
	h, ok := strings.CutPrefix(v, "sha256=")
	got, err := hex.DecodeString(h)
	if !ok || err != nil {
		return adapters.Unauthenticated(SignatureHeader + " is not sha256=<hex>")
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(Signature(a.secret, r.Body), "sha256="))
	if !hmac.Equal(got, want) {
		return adapters.Unauthenticated("signature mismatch")
	}
	return nil
}

// Handshake answers Meta's subscription check: 200 text/plain with
// hub.challenge when hub.mode is subscribe and hub.verify_token is the
// entry's token (compared in constant time); 403 otherwise; 400 for a
// right token with a challenge that is not a short token of letters,
// digits and - _ . ~ (it is echoed, so nothing else may pass).
func (a *Adapter) Handshake(r *adapters.Request) (int, string, []byte) {
	const text = "text/plain; charset=utf-8"
	var q url.Values
	if r.URL != nil {
		q = r.URL.Query()
	}
	got, want := sha256.Sum256([]byte(q.Get("hub.verify_token"))), sha256.Sum256([]byte(a.token))
	tokenOK := subtle.ConstantTimeCompare(got[:], want[:]) == 1 && len(q["hub.verify_token"]) == 1
	if q.Get("hub.mode") != "subscribe" || !tokenOK {
		return http.StatusForbidden, text, []byte("forbidden\n")
	}
	c := q.Get("hub.challenge")
	if len(q["hub.challenge"]) != 1 || !challenge(c) {
		return http.StatusBadRequest, text, []byte("hub.challenge must be 1 to 128 letters, digits, -, _, . or ~\n")
	}
	return http.StatusOK, text, []byte(c)
}

func challenge(s string) bool {
	if s == "" || len(s) > MaxChallenge {
		return false
	}
	return strings.Trim(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.~") == ""
}

type payload struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Metadata struct {
					DisplayPhoneNumber string `json:"display_phone_number"`
					PhoneNumberID      string `json:"phone_number_id"`
				} `json:"metadata"`
				Messages []message `json:"messages"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type message struct {
	From       string `json:"from"`
	FromUserID string `json:"from_user_id"`
	ID         string `json:"id"`
	Timestamp  string `json:"timestamp"`
	Type       string `json:"type"`
	GroupID    string `json:"group_id"`
	Text       struct {
		Body string `json:"body"`
	} `json:"text"`
	Button struct {
		Text string `json:"text"`
	} `json:"button"`
	Interactive struct {
		Type        string `json:"type"`
		ButtonReply struct {
			Title string `json:"title"`
		} `json:"button_reply"`
	} `json:"interactive"`
	Context struct {
		Forwarded           bool `json:"forwarded"`
		FrequentlyForwarded bool `json:"frequently_forwarded"`
	} `json:"context"`
}

// text returns the message's text and whether its type carries one: a text
// body, a quick-reply button's text, an interactive button reply's title.
func (m message) text() (string, bool) {
	switch m.Type {
	case "text":
		return m.Text.Body, true
	case "button":
		return m.Button.Text, true
	case "interactive":
		if m.Interactive.Type == "button_reply" {
			return m.Interactive.ButtonReply.Title, true
		}
	}
	return "", false
}

// Parse reads every entry, change and message of a notification. Changes
// of another field, statuses, group messages and messages without text
// (media, system notices such as user_changed_number) yield nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var p payload
	if err := json.Unmarshal(r.Body, &p); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	if p.Object != "whatsapp_business_account" {
		return nil, nil
	}
	var out []adapters.Inbound
	for _, e := range p.Entry {
		for _, ch := range e.Changes {
			if ch.Field != "messages" {
				continue
			}
			v := ch.Value
			for _, m := range v.Messages {
				text, ok := m.text()
				if !ok || m.GroupID != "" {
					continue
				}
				in, err := a.inbound(m, strings.TrimSpace(v.Metadata.PhoneNumberID))
				if err != nil {
					return nil, err
				}
				in.Text, in.Raw = text, r.Body
				out = append(out, in)
			}
		}
	}
	return out, nil
}

func (a *Adapter) inbound(m message, toID string) (adapters.Inbound, error) {
	in := adapters.Inbound{
		Provider: a.name, Channel: adapters.ChannelWhatsApp, MessageID: strings.TrimSpace(m.ID), ToID: toID,
		ReceivedAt: a.now().UTC(), Forwarded: m.Context.Forwarded || m.Context.FrequentlyForwarded,
	}
	from, user := strings.TrimSpace(m.From), strings.TrimSpace(m.FromUserID)
	switch {
	case in.MessageID == "":
		return in, adapters.Malformed("a message without id")
	case toID == "":
		return in, adapters.Malformed("a message without metadata.phone_number_id")
	case from != "":
		in.From = adapters.E164(from)
		// A from that is no phone number (a user id where digits belong)
		// is a withheld number too: fail closed.
		in.SenderHidden = !strings.HasPrefix(in.From, "+")
	case user != "":
		// A username sender: the phone number is withheld.
		in.From, in.SenderHidden = user, true
	default:
		return in, adapters.Malformed("a message without from or from_user_id")
	}
	if sec, err := strconv.ParseInt(m.Timestamp, 10, 64); err == nil {
		in.ReceivedAt = time.Unix(sec, 0).UTC()
	}
	return in, nil
}

// Sign returns the notification Meta would POST for m, signed. m.ToID
// (the receiving number's phone_number_id) is required; a SenderHidden m
// is sent with from_user_id = m.From and no from.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	if m.ToID == "" {
		return nil, errors.New("whatsapp: the message needs ToID, the receiving number's phone_number_id")
	}
	id := m.MessageID
	if id == "" {
		id = "wamid." + adapters.RandomHex(24)
	}
	msg := map[string]any{"id": id, "timestamp": strconv.FormatInt(now.Unix(), 10), "type": "text", "text": map[string]string{"body": m.Text}}
	contact := map[string]any{"profile": map[string]string{"name": "mogate"}}
	if m.SenderHidden {
		msg["from_user_id"] = m.From
		contact["user_id"] = m.From
	} else {
		digits := strings.TrimPrefix(m.From, "+")
		msg["from"], contact["wa_id"] = digits, digits
	}
	if m.Forwarded {
		msg["context"] = map[string]bool{"forwarded": true}
	}
	body, err := json.Marshal(map[string]any{
		"object": "whatsapp_business_account",
		"entry": []any{map[string]any{"id": "mogate", "changes": []any{map[string]any{"field": "messages", "value": map[string]any{
			"messaging_product": "whatsapp",
			"metadata":          map[string]string{"display_phone_number": strings.TrimPrefix(m.To, "+"), "phone_number_id": m.ToID},
			"contacts":          []any{contact},
			"messages":          []any{msg},
		}}}}},
	})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	return r, a.Resign(r, now)
}

// Resign sets X-Hub-Signature-256 for r's body.
func (a *Adapter) Resign(r *adapters.Request, _ time.Time) error {
	r.Header.Set(SignatureHeader, Signature(a.secret, r.Body))
	return nil
}
