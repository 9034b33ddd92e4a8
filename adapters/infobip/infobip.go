// Package infobip authenticates and parses Infobip inbound SMS forwarded to
// a URL (renderer MO_JSON_2).
//
// Authentication: HTTP Basic, as set in the number's forwarding security
// settings, compared in constant time; Infobip's classic forward signs no
// payload. One body carries results[], possibly several messages. Defined at
// https://www.infobip.com/docs/api/channels/sms/inbound-sms/receive-inbound-sms-messages.
package infobip

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Config is an infobip provider entry.
type Config struct {
	Name, Username, Password string
}

// Adapter handles one Infobip forwarding.
type Adapter struct{ name, user, pass string }

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.Username == "" || c.Password == "" {
		return nil, errors.New("infobip: username and password are required")
	}
	return &Adapter{name: c.Name, user: c.Username, pass: c.Password}, nil
}

// Verify checks the HTTP Basic credentials.
func (a *Adapter) Verify(r *adapters.Request) error {
	return adapters.CheckBasic(r.Header, a.user, a.pass)
}

// Challenge asks for Basic credentials.
func (a *Adapter) Challenge() string { return `Basic realm="mogate"` }

type body struct {
	Results []struct {
		MessageID  string `json:"messageId"`
		From       string `json:"from"`
		To         string `json:"to"`
		Text       string `json:"text"`
		ReceivedAt string `json:"receivedAt"`
		SMSCount   int    `json:"smsCount"`
	} `json:"results"`
}

// Parse reads every result.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var b body
	if err := json.Unmarshal(r.Body, &b); err != nil {
		return nil, adapters.Malformed("json: " + err.Error())
	}
	var out []adapters.Inbound
	for _, m := range b.Results {
		from, to := adapters.E164(m.From), adapters.E164(m.To)
		switch {
		case strings.TrimSpace(m.MessageID) == "":
			return nil, adapters.Malformed("no messageId")
		case from == "":
			return nil, adapters.Malformed("no from")
		case to == "":
			return nil, adapters.Malformed("no to")
		}
		received := time.Now().UTC()
		if t, err := time.Parse("2006-01-02T15:04:05.000-0700", m.ReceivedAt); err == nil {
			received = t.UTC()
		}
		in := adapters.Inbound{Provider: a.name, MessageID: m.MessageID, From: from, To: to, Text: m.Text, ReceivedAt: received, Raw: r.Body}
		if m.SMSCount > 1 {
			in.Parts = m.SMSCount
		}
		out = append(out, in)
	}
	return out, nil
}

// Resign sets the Basic credentials.
func (a *Adapter) Resign(r *adapters.Request, _ time.Time) error {
	adapters.SetBasic(r.Header, a.user, a.pass)
	return nil
}

// Sign returns the forward Infobip would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(9)
	}
	b, err := json.Marshal(map[string]any{"results": []map[string]any{{
		"messageId": id, "from": strings.TrimPrefix(m.From, "+"), "to": strings.TrimPrefix(m.To, "+"), "text": m.Text,
		"cleanText": m.Text, "keyword": "", "receivedAt": now.UTC().Format("2006-01-02T15:04:05.000+0000"), "smsCount": 1,
		"price": map[string]any{"pricePerMessage": 0, "currency": "EUR"},
	}}, "messageCount": 1, "pendingMessageCount": 0})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: b}
	return r, a.Resign(r, now)
}
