// Package plivo authenticates and parses Plivo inbound-message webhooks.
//
// Signature schemes (https://www.plivo.com/docs/messaging/concepts/signature-validation):
//   - V3: X-Plivo-Signature-V3 (or -Ma-V3) with X-Plivo-Signature-V3-Nonce:
//     Base64 HMAC-SHA256 keyed with the Auth Token over the URL, the sorted
//     query and body parameters (as plivo-go's GenerateUrl builds them), "."
//     and the nonce. The header may list several signatures separated by
//     commas; one match is enough.
//   - V2: X-Plivo-Signature-V2 (or -Ma-V2) with X-Plivo-Signature-V2-Nonce:
//     Base64 HMAC-SHA256 over scheme://host/path followed by the nonce. It
//     signs neither query nor body, so it is good for one request only: the
//     adapter reports the nonce (Nonce) and the gateway spends it durably,
//     refusing a V2-only request whose nonce was spent. Every accepted
//     request spends its V2 nonce, so stripping V3 from a genuine request
//     and replaying its V2 signature with another body is refused.
//
// V3 is checked whenever its header is present. Comparisons are constant-time
// (plivo-go compares with ==).
package plivo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// Signature headers.
const (
	HeaderV3      = "X-Plivo-Signature-V3"
	HeaderMaV3    = "X-Plivo-Signature-Ma-V3"
	HeaderV3Nonce = "X-Plivo-Signature-V3-Nonce"
	HeaderV2      = "X-Plivo-Signature-V2"
	HeaderMaV2    = "X-Plivo-Signature-Ma-V2"
	HeaderV2Nonce = "X-Plivo-Signature-V2-Nonce"
)

// Config is a plivo provider entry.
type Config struct {
	Name      string
	AuthID    string
	AuthToken string
}

// Adapter handles one Plivo account.
type Adapter struct {
	name, authID, token string
}

var _ adapters.Noncer = (*Adapter)(nil)

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.AuthToken == "" {
		return nil, errors.New("plivo: auth_token is required")
	}
	return &Adapter{name: c.Name, authID: c.AuthID, token: c.AuthToken}, nil
}

// Verify checks the V3 signature, or the V2 one when no V3 header is present.
func (a *Adapter) Verify(r *adapters.Request) error {
	if sigs := firstHeader(r.Header, HeaderV3, HeaderMaV3); sigs != "" {
		params, err := bodyParams(r)
		if err != nil {
			return adapters.Unauthenticated("unreadable parameters")
		}
		want := SignatureV3(a.token, r.URL, r.Method, r.Header.Get(HeaderV3Nonce), params)
		if !anyMatch(sigs, want) {
			return adapters.Unauthenticated("V3 signature mismatch")
		}
		return nil
	}
	if sigs := firstHeader(r.Header, HeaderV2, HeaderMaV2); sigs != "" {
		nonce := r.Header.Get(HeaderV2Nonce)
		if nonce == "" || !anyMatch(sigs, SignatureV2(a.token, r.URL, nonce)) {
			return adapters.Unauthenticated("V2 signature mismatch")
		}
		return nil
	}
	return adapters.Missing(HeaderV3 + " or " + HeaderV2)
}

// Nonce implements adapters.Noncer: the V2 nonce of a verified request,
// and whether the checked signature (V3) covers the body.
func (a *Adapter) Nonce(r *adapters.Request) (string, bool) {
	return r.Header.Get(HeaderV2Nonce), firstHeader(r.Header, HeaderV3, HeaderMaV3) != ""
}

// SignatureV3 computes the V3 signature (Base64) as plivo-go's ComputeSignatureV3 does.
func SignatureV3(token string, u *url.URL, method, nonce string, params map[string]string) string {
	base := u.Scheme + "://" + u.Host + u.Path
	query := firstOf(u.Query())
	if len(params) > 0 || u.RawQuery != "" {
		base += "?"
	}
	switch {
	case u.RawQuery != "" && method == http.MethodGet:
		for k, v := range params {
			query[k] = v
		}
		base += joinSorted(query, true)
	case u.RawQuery != "":
		base = strings.TrimRight(base+joinSorted(query, true)+"."+joinSorted(params, false), ".")
	case method == http.MethodGet:
		base += joinSorted(params, true)
	default:
		base += joinSorted(params, false)
	}
	return mac(token, base+"."+nonce)
}

// SignatureV2 computes the V2 signature (Base64).
func SignatureV2(token string, u *url.URL, nonce string) string {
	return mac(token, u.Scheme+"://"+u.Host+u.Path+nonce)
}

func mac(token, msg string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte(msg))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func anyMatch(list, want string) bool {
	w, _ := base64.StdEncoding.DecodeString(want)
	ok := false
	for _, s := range strings.Split(list, ",") {
		got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err == nil && hmac.Equal(got, w) {
			ok = true
		}
	}
	return ok
}

// Parse reads MessageUUID, From, To and Text (Body for MMS). Plivo hands over
// long messages concatenated; Units says how many parts they came in.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	v, err := values(r)
	if err != nil {
		return nil, adapters.Malformed("form: " + err.Error())
	}
	f, err := adapters.FirstValues(v, "MessageUUID", "From", "To", "Text", "Body", "Units")
	if err != nil {
		return nil, err
	}
	id, from, to := strings.TrimSpace(f["MessageUUID"]), adapters.E164(f["From"]), adapters.E164(f["To"])
	switch {
	case id == "":
		return nil, adapters.Malformed("no MessageUUID")
	case from == "":
		return nil, adapters.Malformed("no From")
	case to == "":
		return nil, adapters.Malformed("no To")
	}
	text := f["Text"]
	if text == "" {
		text = f["Body"]
	}
	in := adapters.Inbound{
		Provider: a.name, Account: a.authID, MessageID: id,
		From: from, To: to, Text: text,
		ReceivedAt: time.Now().UTC(), Raw: r.Body,
	}
	if r.Method == http.MethodGet {
		in.Raw = []byte(r.URL.RawQuery)
	}
	if n, err := strconv.Atoi(f["Units"]); err == nil && n > 1 {
		in.Parts = n
	}
	return []adapters.Inbound{in}, nil
}

// Ack is an empty Plivo XML response.
func (a *Adapter) Ack() (int, string, []byte) { return http.StatusOK, "text/xml", ack }

// ack is Ack's body, one slice for every request (adapters.Acker: not to
// be modified).
var ack = []byte("<Response></Response>")

// Sign returns the form POST Plivo would send for m, with V3 and V2 signatures.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, _ time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		h := adapters.RandomHex(16)
		id = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	}
	p := map[string]string{
		"MessageUUID": id, "From": strings.TrimPrefix(m.From, "+"), "To": strings.TrimPrefix(m.To, "+"),
		"Text": m.Text, "Type": "sms", "Units": "1", "TotalRate": "0.00000", "TotalAmount": "0.00000",
	}
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: h, Body: []byte(form.Encode())}
	return r, a.Resign(r, time.Time{})
}

// Resign sets fresh V3 and V2 signatures with a new nonce, as Plivo sends both.
func (a *Adapter) Resign(r *adapters.Request, _ time.Time) error {
	params, err := bodyParams(r)
	if err != nil {
		return err
	}
	nonce := adapters.RandomHex(10)
	r.Header.Del(HeaderMaV3)
	r.Header.Del(HeaderMaV2)
	r.Header.Set(HeaderV3, SignatureV3(a.token, r.URL, r.Method, nonce, params))
	r.Header.Set(HeaderV3Nonce, nonce)
	r.Header.Set(HeaderV2, SignatureV2(a.token, r.URL, nonce))
	r.Header.Set(HeaderV2Nonce, nonce)
	return nil
}

func bodyParams(r *adapters.Request) (map[string]string, error) {
	if r.Method == http.MethodGet || len(r.Body) == 0 {
		return map[string]string{}, nil
	}
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, err
	}
	return firstOf(v), nil
}

func values(r *adapters.Request) (url.Values, error) {
	if r.Method == http.MethodGet {
		return url.ParseQuery(r.URL.RawQuery)
	}
	return url.ParseQuery(string(r.Body))
}

func firstOf(v url.Values) map[string]string {
	m := make(map[string]string, len(v))
	for k, vs := range v {
		m[k] = vs[0]
	}
	return m
}

func joinSorted(m map[string]string, query bool) string {
	keys := make(url.Values, len(m))
	for k := range m {
		keys[k] = nil
	}
	var b strings.Builder
	for i, k := range adapters.SortedKeys(keys) {
		if query {
			if i > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k + "=" + m[k])
		} else {
			b.WriteString(k + m[k])
		}
	}
	return b.String()
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
