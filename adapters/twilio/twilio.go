// Package twilio authenticates and parses Twilio Programmable Messaging
// incoming-message webhooks.
//
// Signature scheme: X-Twilio-Signature, Base64 HMAC-SHA1 keyed with the
// account Auth Token over the full URL Twilio called followed, for form
// POSTs, by every parameter as name+value sorted by name; GET webhooks sign
// the URL alone. The URL is tried with and without the default port, as the
// official SDKs do. Defined at
// https://www.twilio.com/docs/usage/webhooks/webhooks-security; verification
// here is twilio-go's client.RequestValidator.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/twilio/twilio-go/client"
)

// SignatureHeader carries the request signature.
const SignatureHeader = "X-Twilio-Signature"

// Config is a twilio provider entry.
type Config struct {
	Name       string // provider entry name
	AuthToken  string
	AccountSID string // optional: when set, messages of other accounts are refused
}

// Adapter handles one Twilio account.
type Adapter struct {
	name       string
	token      string
	accountSID string
	validator  client.RequestValidator
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.AuthToken == "" {
		return nil, errors.New("twilio: auth_token is required")
	}
	return &Adapter{name: c.Name, token: c.AuthToken, accountSID: c.AccountSID, validator: client.NewRequestValidator(c.AuthToken)}, nil
}

// Verify checks X-Twilio-Signature against the public URL and the form
// parameters (POST) or the URL alone (GET).
func (a *Adapter) Verify(r *adapters.Request) error {
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		return adapters.Missing(SignatureHeader)
	}
	u := r.URL.String()
	var ok bool
	if r.Method == http.MethodGet {
		ok = a.validator.Validate(u, map[string]string{}, sig)
	} else {
		ok = a.validator.ValidateBody(u, r.Body, sig)
	}
	if !ok {
		return adapters.Unauthenticated("signature mismatch")
	}
	if a.accountSID != "" {
		v, err := values(r)
		if err != nil || v.Get("AccountSid") != a.accountSID {
			return adapters.Unauthenticated("message of another account")
		}
	}
	return nil
}

// Parse reads MessageSid, From, To and Body. Twilio hands over long messages
// already reassembled; NumSegments says how many parts they came in.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	v, err := values(r)
	if err != nil {
		return nil, adapters.Malformed("form: " + err.Error())
	}
	f, err := adapters.FirstValues(v, "MessageSid", "SmsMessageSid", "SmsSid", "From", "To", "Body", "AccountSid", "NumSegments")
	if err != nil {
		return nil, err
	}
	id := strings.TrimSpace(firstNonEmpty(f["MessageSid"], f["SmsMessageSid"], f["SmsSid"]))
	from, to := adapters.E164(f["From"]), adapters.E164(f["To"])
	switch {
	case id == "":
		return nil, adapters.Malformed("no MessageSid")
	case from == "":
		return nil, adapters.Malformed("no From")
	case to == "":
		return nil, adapters.Malformed("no To")
	}
	in := adapters.Inbound{
		Provider:   a.name,
		Account:    f["AccountSid"],
		MessageID:  id,
		From:       from,
		To:         to,
		Text:       f["Body"],
		ReceivedAt: time.Now().UTC(),
		Raw:        r.Body,
	}
	if r.Method == http.MethodGet {
		in.Raw = []byte(r.URL.RawQuery)
	}
	if n, err := strconv.Atoi(f["NumSegments"]); err == nil && n > 1 {
		in.Parts = n // already reassembled by Twilio: no PartsRef
	}
	return []adapters.Inbound{in}, nil
}

// Ack is the empty TwiML reply Twilio expects.
func (a *Adapter) Ack() (int, string, []byte) {
	return http.StatusOK, "text/xml", []byte(`<?xml version="1.0" encoding="UTF-8"?><Response/>`)
}

// Sign returns the form POST Twilio would send for m to target.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, _ time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = "SM" + adapters.RandomHex(16)
	}
	account := a.accountSID
	if account == "" {
		account = "AC" + strings.Repeat("0", 32)
	}
	form := url.Values{
		"MessageSid": {id}, "SmsMessageSid": {id}, "SmsSid": {id}, "AccountSid": {account},
		"From": {m.From}, "To": {m.To}, "Body": {m.Text}, "NumSegments": {"1"}, "NumMedia": {"0"},
		"SmsStatus": {"received"}, "ApiVersion": {"2010-04-01"},
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: h, Body: []byte(form.Encode())}
	return r, a.Resign(r, time.Time{})
}

// Resign sets X-Twilio-Signature for r: over the URL and the form body for
// a POST, over the URL alone for a GET.
func (a *Adapter) Resign(r *adapters.Request, _ time.Time) error {
	var params url.Values
	if r.Method != http.MethodGet {
		var err error
		if params, err = url.ParseQuery(string(r.Body)); err != nil {
			return err
		}
	}
	r.Header.Set(SignatureHeader, Signature(a.token, r.URL.String(), params))
	return nil
}

// Signature computes X-Twilio-Signature for a POST of params to rawURL
// (params nil for a GET). Every value of a repeated name is appended, sorted,
// as twilio-python and twilio-node do.
func Signature(token, rawURL string, params url.Values) string {
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(rawURL))
	for _, k := range adapters.SortedKeys(params) {
		for _, v := range params[k] {
			mac.Write([]byte(k))
			mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func values(r *adapters.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return url.ParseQuery(r.URL.RawQuery)
	}
	return url.ParseQuery(string(r.Body))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
