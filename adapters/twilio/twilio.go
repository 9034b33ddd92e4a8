// Package twilio authenticates and parses Twilio's incoming-message
// webhooks (Programmable Messaging: SMS, and WhatsApp with From/To of the
// form whatsapp:+E164) and its Programmable Voice requests (a form with
// CallSid and no MessageSid), which are always answered with a <Reject>.
//
// Signature scheme: X-Twilio-Signature, Base64 HMAC-SHA1 keyed with the
// account Auth Token over the full URL Twilio called followed, for form
// POSTs, by every parameter as name+value sorted by name; GET webhooks sign
// the URL alone. The URL is tried as seen and with the other port variant
// (the default port added or removed), as the official SDKs do. Defined at
// https://www.twilio.com/docs/usage/webhooks/webhooks-security; verification
// accepts what twilio-go's client.RequestValidator accepts, and, for a
// voice request, also a signature over every parameter but StirVerstat
// (docs/channels.md).
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
	"sync"
	"time"

	"github.com/mogate/mogate/adapters"
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
	signers    sync.Pool // of *signer, keyed with token
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.AuthToken == "" {
		return nil, errors.New("twilio: auth_token is required")
	}
	return &Adapter{name: c.Name, token: c.AuthToken, accountSID: c.AccountSID}, nil
}

// Verify checks X-Twilio-Signature against the public URL and the form
// parameters (POST) or the URL alone (GET).
func (a *Adapter) Verify(r *adapters.Request) error {
	sig := r.Header.Get(SignatureHeader)
	if sig == "" {
		return adapters.Missing(SignatureHeader)
	}
	if !a.valid(r, sig) {
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

// Parse reads a message (MessageSid, From, To, Body) or a voice request
// (CallSid without MessageSid: the call channel, no text, the STIR/SHAKEN
// attestation from StirVerstat). From and To of the form whatsapp:+E164
// are the whatsapp channel; a whatsapp sender without a phone number (a
// business-scoped user id) is kept in From and marked SenderHidden.
// FromCountry is the sender's country. Twilio hands over long messages
// already reassembled; NumSegments says how many parts they came in.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	v, err := values(r)
	if err != nil {
		return nil, adapters.Malformed("form: " + err.Error())
	}
	if err := v.Unrepeated("MessageSid", "SmsMessageSid", "SmsSid", "CallSid", "From", "To", "Body",
		"AccountSid", "NumSegments", "FromCountry", stirParam); err != nil {
		return nil, err
	}
	f := v.Get // none of those repeated: each has its first value or none
	id := strings.TrimSpace(firstNonEmpty(f("MessageSid"), f("SmsMessageSid"), f("SmsSid")))
	call := id == "" && strings.TrimSpace(f("CallSid")) != ""
	if call {
		id = strings.TrimSpace(f("CallSid"))
	}
	in := adapters.Inbound{
		Provider:      a.name,
		Account:       f("AccountSid"),
		MessageID:     id,
		ReceivedAt:    time.Now().UTC(),
		Raw:           r.Body,
		SenderCountry: adapters.CountryCode(f("FromCountry")),
	}
	if r.Method == http.MethodGet {
		in.Raw = []byte(r.URL.RawQuery)
	}
	from, fromWA := strings.CutPrefix(strings.TrimSpace(f("From")), whatsappPrefix)
	to, toWA := strings.CutPrefix(strings.TrimSpace(f("To")), whatsappPrefix)
	in.From, in.To = adapters.E164(from), adapters.E164(to)
	switch {
	case id == "":
		return nil, adapters.Malformed("no MessageSid or CallSid")
	case in.From == "":
		return nil, adapters.Malformed("no From")
	case in.To == "":
		return nil, adapters.Malformed("no To")
	case fromWA != toWA:
		return nil, adapters.Malformed("From and To on different channels")
	}
	// A WhatsApp sender without a phone number: a business-scoped user id.
	in.SenderHidden = fromWA && !isPhone(strings.TrimSpace(from))
	switch {
	case call:
		in.Channel = adapters.ChannelCall
		if !fromWA { // a WhatsApp call carries no STIR/SHAKEN: never attested
			in.Attestation = attestation(f(stirParam))
		}
	case fromWA:
		in.Channel = adapters.ChannelWhatsApp
		in.Text = f("Body")
	default:
		in.Text = f("Body")
		// Absent, it is no number: skip Atoi, whose error allocates.
		if s := f("NumSegments"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n > 1 {
				in.Parts = n // already reassembled by Twilio: no PartsRef
			}
		}
	}
	return []adapters.Inbound{in}, nil
}

// whatsappPrefix marks a WhatsApp address in From and To.
const whatsappPrefix = "whatsapp:"

// isPhone reports whether n is + followed by digits only.
func isPhone(n string) bool {
	if len(n) < 2 || n[0] != '+' {
		return false
	}
	for _, c := range n[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// attestation maps StirVerstat to a validated attestation level: the
// letter of TN-Validation-Passed-A, -B or -C; "" for a failed validation
// (TN-Validation-Failed-*), No-TN-Validation, none, or anything else. Only
// "A" ever verifies a session.
func attestation(verstat string) string {
	switch strings.TrimSpace(verstat) {
	case "TN-Validation-Passed-A":
		return "A"
	case "TN-Validation-Passed-B":
		return "B"
	case "TN-Validation-Passed-C":
		return "C"
	}
	return ""
}

// verstat is attestation's inverse, for Sign.
func verstat(level string) string {
	switch level {
	case "A", "B", "C":
		return "TN-Validation-Passed-" + level
	}
	return ""
}

// Answer answers a voice request with adapters.RejectCall, always: the call
// is refused before it is answered, whatever it matched.
func (a *Adapter) Answer(_ *adapters.Request, ins []adapters.Inbound) (int, string, []byte, bool) {
	return adapters.AnswerCalls(ins)
}

// Ack is the empty TwiML reply Twilio expects.
func (a *Adapter) Ack() (int, string, []byte) { return http.StatusOK, "text/xml", ack }

// ack is Ack's body, one slice for every request (adapters.Acker: not to
// be modified).
var ack = []byte(`<?xml version="1.0" encoding="UTF-8"?><Response/>`)

// Sign returns the form POST Twilio would send for m to target: an SMS,
// a WhatsApp message (m.Channel whatsapp; m.From is the business-scoped
// user id when m.SenderHidden) or a voice request (m.Channel call, with
// StirVerstat when m.Attestation is A, B or C).
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, _ time.Time) (*adapters.Request, error) {
	account := a.accountSID
	if account == "" {
		account = "AC" + strings.Repeat("0", 32)
	}
	form := url.Values{"AccountSid": {account}, "From": {m.From}, "To": {m.To}, "ApiVersion": {"2010-04-01"}}
	if m.SenderCountry != "" {
		form.Set("FromCountry", m.SenderCountry)
	}
	id := m.MessageID
	switch m.Channel {
	case adapters.ChannelCall:
		if id == "" {
			id = "CA" + adapters.RandomHex(16)
		}
		form.Set("CallSid", id)
		form.Set("CallStatus", "ringing")
		form.Set("Direction", "inbound")
		if v := verstat(m.Attestation); v != "" {
			form.Set(stirParam, v)
		}
	default:
		if id == "" {
			id = "SM" + adapters.RandomHex(16)
		}
		for _, k := range []string{"MessageSid", "SmsMessageSid", "SmsSid"} {
			form.Set(k, id)
		}
		form.Set("Body", m.Text)
		form.Set("NumSegments", "1")
		form.Set("NumMedia", "0")
		form.Set("SmsStatus", "received")
		if m.Channel == adapters.ChannelWhatsApp {
			form.Set("From", whatsappPrefix+m.From)
			form.Set("To", whatsappPrefix+m.To)
			form.Set("MessageType", "text")
			if !m.SenderHidden {
				form.Set("WaId", strings.TrimPrefix(m.From, "+"))
			}
		}
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

// values are the request's parameters: the query of a GET, else the form
// body (parsed once for Verify and Parse: not to be modified).
func values(r *adapters.Request) (adapters.Params, error) {
	if r.Method == http.MethodGet {
		return adapters.ParseParams(r.URL.RawQuery)
	}
	return r.Params()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
