// Package bandwidth authenticates and parses Bandwidth Messaging v2
// message-received callbacks.
//
// Authentication: HTTP Basic with the application's callback credentials
// (InboundCallbackCreds), compared in constant time; Bandwidth signs no
// payload. One callback body is a JSON array of events, possibly several
// messages. Defined at https://dev.bandwidth.com/docs/messaging/webhooks.
package bandwidth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Config is a bandwidth provider entry.
type Config struct {
	Name, Username, Password string
}

// Adapter handles one Bandwidth application.
type Adapter struct{ name, user, pass string }

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.Username == "" || c.Password == "" {
		return nil, errors.New("bandwidth: username and password are required")
	}
	return &Adapter{name: c.Name, user: c.Username, pass: c.Password}, nil
}

// Verify checks the HTTP Basic credentials.
func (a *Adapter) Verify(r *adapters.Request) error {
	return adapters.CheckBasic(r.Header, a.user, a.pass)
}

// Challenge asks for Basic credentials.
func (a *Adapter) Challenge() string { return `Basic realm="mogate"` }

type event struct {
	Type    string `json:"type"`
	Time    string `json:"time"`
	To      string `json:"to"`
	Message struct {
		ID           string   `json:"id"`
		From         string   `json:"from"`
		To           []string `json:"to"`
		Text         string   `json:"text"`
		SegmentCount int      `json:"segmentCount"`
		Direction    string   `json:"direction"`
	} `json:"message"`
}

// Parse reads every message-received event of the array; other event
// types (delivery receipts) yield nothing.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	var events []event
	if err := json.Unmarshal(r.Body, &events); err != nil {
		return nil, adapters.Malformed("json: the body must be an array of events")
	}
	var out []adapters.Inbound
	for _, e := range events {
		if e.Type != "message-received" {
			continue
		}
		to := e.To
		if to == "" && len(e.Message.To) == 1 {
			to = e.Message.To[0]
		}
		from, to := adapters.E164(e.Message.From), adapters.E164(to)
		switch {
		case strings.TrimSpace(e.Message.ID) == "":
			return nil, adapters.Malformed("no message.id")
		case from == "":
			return nil, adapters.Malformed("no message.from")
		case to == "":
			return nil, adapters.Malformed("no to")
		}
		received := time.Now().UTC()
		if t, err := time.Parse(time.RFC3339Nano, e.Time); err == nil {
			received = t.UTC()
		}
		in := adapters.Inbound{Provider: a.name, MessageID: e.Message.ID, From: from, To: to, Text: e.Message.Text, ReceivedAt: received, Raw: r.Body}
		if e.Message.SegmentCount > 1 {
			in.Parts = e.Message.SegmentCount
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

// Sign returns the callback Bandwidth would send for m.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = adapters.RandomHex(16)
	}
	ts := now.UTC().Format("2006-01-02T15:04:05.000Z")
	body, err := json.Marshal([]map[string]any{{
		"time": ts, "type": "message-received", "to": m.To, "description": "Incoming message received",
		"message": map[string]any{"id": id, "owner": m.To, "time": ts, "segmentCount": 1, "direction": "in",
			"to": []string{m.To}, "from": m.From, "text": m.Text},
	}})
	if err != nil {
		return nil, err
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
	return r, a.Resign(r, now)
}
