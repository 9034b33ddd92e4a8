package telnyx

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// isJSON reports whether body is a JSON document (a messaging event) rather
// than a form (a TeXML voice request).
func isJSON(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// parseCall reads a TeXML voice request: CallSid (the dedupe key), From,
// To, and the attestation, which counts only when Telnyx validated it
// (ShakenStirValidated=true): otherwise it is "". A GET request is
// malformed: its parameters would be in the query, which the signature
// does not cover (the TeXML application's voice method must be POST).
func (a *Adapter) parseCall(r *adapters.Request) ([]adapters.Inbound, error) {
	if r.Method == http.MethodGet {
		return nil, adapters.Malformed("a TeXML request by GET: its query is not signed; set the TeXML application's voice method to POST")
	}
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, adapters.Malformed("form: " + err.Error())
	}
	f, err := adapters.FirstValues(v, "CallSid", "From", "To", "AccountSid", "ShakenStirAttestation", "ShakenStirValidated")
	if err != nil {
		return nil, err
	}
	id := strings.TrimSpace(f["CallSid"])
	if id == "" {
		return nil, adapters.Malformed("neither a JSON event nor a TeXML form with CallSid")
	}
	in := adapters.Inbound{
		Provider: a.name, Account: f["AccountSid"], MessageID: id, Channel: adapters.ChannelCall,
		From: adapters.E164(f["From"]), To: adapters.E164(f["To"]), ReceivedAt: a.now().UTC(), Raw: r.Body,
	}
	switch {
	case in.From == "":
		return nil, adapters.Malformed("no From")
	case in.To == "":
		return nil, adapters.Malformed("no To")
	}
	if strings.EqualFold(strings.TrimSpace(f["ShakenStirValidated"]), "true") {
		switch level := strings.ToUpper(strings.TrimSpace(f["ShakenStirAttestation"])); level {
		case "A", "B", "C":
			in.Attestation = level
		}
	}
	return []adapters.Inbound{in}, nil
}

// Answer answers a TeXML voice request with adapters.RejectCall, always:
// the call is refused before it is answered, whatever it matched.
func (a *Adapter) Answer(_ *adapters.Request, ins []adapters.Inbound) (int, string, []byte, bool) {
	return adapters.AnswerCalls(ins)
}

// signTeXML returns the TeXML voice request Telnyx would send for the call
// m: validated with m.Attestation when it is A, B or C, without
// attestation otherwise.
func (a *Adapter) signTeXML(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = "v3:" + adapters.RandomHex(16)
	}
	form := url.Values{
		"AccountSid": {adapters.RandomHex(16)}, "CallSid": {id}, "CallStatus": {"ringing"},
		"From": {m.From}, "To": {m.To}, "CallerId": {m.From}, "Timestamp": {now.UTC().Format(time.RFC3339)},
	}
	switch m.Attestation {
	case "A", "B", "C":
		form.Set("ShakenStirAttestation", m.Attestation)
		form.Set("ShakenStirValidated", "true")
	}
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte(form.Encode())}
	return r, a.Resign(r, now)
}

// telnyxLineType is what Telnyx messaging calls a normalised line type.
func telnyxLineType(t string) string {
	switch t {
	case adapters.LineMobile:
		return "Wireless"
	case adapters.LineLandline:
		return "Wireline"
	case adapters.LineVoIP:
		return "VoIP"
	case adapters.LineTollFree:
		return "Toll Free"
	}
	return t
}
