// Package vonage authenticates and parses Vonage (Nexmo) SMS API inbound
// webhooks.
//
// Signature scheme: the `sig` parameter. All other parameters are sorted by
// name, `&` and `=` in values become `_`, and they are joined as
// `&name=value`; "md5hash" is hex MD5 of that string followed by the
// signature secret, the other methods are hex HMAC-MD5/SHA1/SHA256/SHA512
// keyed with the secret. Hex is compared case-insensitively and `timestamp`
// must be within 5 minutes. Defined at
// https://developer.vonage.com/en/getting-started/concepts/signing-messages.
//
// Long messages arrive one part per webhook (concat, concat-ref,
// concat-total, concat-part), possibly out of order; Parse reports the part
// and the gateway's matcher reassembles them.
package vonage

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
)

// MaxSkew is how far `timestamp` may be from now, either way.
const MaxSkew = 5 * time.Minute

// Config is a vonage provider entry.
type Config struct {
	Name            string
	SignatureSecret string
	SignatureMethod string // md5hash | md5 | sha1 | sha256 | sha512
	APIKey          string // optional: when set, messages of other accounts are refused
	Now             func() time.Time
}

// Adapter handles one Vonage account's SMS API webhooks.
type Adapter struct {
	name, secret, method, apiKey string
	now                          func() time.Time
}

// New returns an adapter for c.
func New(c Config) (*Adapter, error) {
	if c.SignatureSecret == "" {
		return nil, errors.New("vonage: signature_secret is required")
	}
	if c.SignatureMethod == "" {
		c.SignatureMethod = "md5hash"
	}
	if _, ok := hashes[c.SignatureMethod]; !ok && c.SignatureMethod != "md5hash" {
		return nil, fmt.Errorf("vonage: unknown signature_method %q", c.SignatureMethod)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Adapter{name: c.Name, secret: c.SignatureSecret, method: c.SignatureMethod, apiKey: c.APIKey, now: c.Now}, nil
}

var hashes = map[string]func() hash.Hash{"md5": md5.New, "sha1": sha1.New, "sha256": sha256.New, "sha512": sha512.New}

// Verify checks `sig` and the freshness of `timestamp`.
func (a *Adapter) Verify(r *adapters.Request) error {
	p, err := params(r)
	if err != nil {
		return adapters.Unauthenticated("unreadable parameters")
	}
	sig, ok := p["sig"]
	if !ok || sig == "" {
		return adapters.Missing("sig")
	}
	got, err := hex.DecodeString(strings.ToLower(sig))
	if err != nil || !hmac.Equal(got, Signature(a.method, a.secret, p)) {
		return adapters.Unauthenticated("signature mismatch")
	}
	if err := adapters.CheckTimestamp(p["timestamp"], a.now(), MaxSkew); err != nil {
		return err
	}
	if a.apiKey != "" && p["api-key"] != "" && p["api-key"] != a.apiKey {
		return adapters.Unauthenticated("message of another account")
	}
	return nil
}

// Signature computes the raw signature bytes of params (sig excluded).
func Signature(method, secret string, params map[string]string) []byte {
	var b strings.Builder
	for _, k := range sortedKeys(params) {
		if k == "sig" {
			continue
		}
		b.WriteString("&")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strings.NewReplacer("&", "_", "=", "_").Replace(params[k]))
	}
	if method == "md5hash" {
		sum := md5.Sum([]byte(b.String() + secret))
		return sum[:]
	}
	mac := hmac.New(hashes[method], []byte(secret))
	mac.Write([]byte(b.String()))
	return mac.Sum(nil)
}

// Parse reads msisdn, to, messageId, text and the concat fields.
func (a *Adapter) Parse(r *adapters.Request) ([]adapters.Inbound, error) {
	p, err := params(r)
	if err != nil {
		return nil, err
	}
	id, from, to := strings.TrimSpace(p["messageId"]), adapters.E164(p["msisdn"]), adapters.E164(p["to"])
	switch {
	case id == "":
		return nil, adapters.Malformed("no messageId")
	case from == "":
		return nil, adapters.Malformed("no msisdn")
	case to == "":
		return nil, adapters.Malformed("no to")
	}
	in := adapters.Inbound{
		Provider:   a.name,
		Account:    p["api-key"],
		MessageID:  id,
		From:       from,
		To:         to,
		Text:       p["text"],
		ReceivedAt: a.now().UTC(),
		Raw:        r.Body,
	}
	if r.Method == http.MethodGet {
		in.Raw = []byte(r.URL.RawQuery)
	}
	if p["type"] == "binary" {
		in.Text = "" // binary payloads carry no text to match
	}
	if t, err := time.Parse("2006-01-02 15:04:05", p["message-timestamp"]); err == nil {
		in.ReceivedAt = t.UTC()
	} else if ts, err := strconv.ParseInt(p["timestamp"], 10, 64); err == nil {
		in.ReceivedAt = time.Unix(ts, 0).UTC()
	}
	if p["concat-ref"] != "" {
		total, err1 := strconv.Atoi(p["concat-total"])
		part, err2 := strconv.Atoi(p["concat-part"])
		if err1 != nil || err2 != nil || total < 1 || total > 255 || part < 1 || part > total {
			return nil, adapters.Malformed("bad concat-total/concat-part")
		}
		in.Parts, in.Part, in.PartsRef = total, part, p["concat-ref"]
	}
	return []adapters.Inbound{in}, nil
}

// Sign returns the form POST Vonage would send for m (one part: set m.Parts,
// m.Part and m.PartsRef for a concat part), signed with the adapter's method.
func (a *Adapter) Sign(m adapters.Inbound, target *url.URL, now time.Time) (*adapters.Request, error) {
	id := m.MessageID
	if id == "" {
		id = strings.ToUpper(adapters.RandomHex(8))
	}
	typ := "text"
	for _, r := range m.Text {
		if r > 0x7f {
			typ = "unicode"
			break
		}
	}
	p := map[string]string{
		"msisdn": strings.TrimPrefix(m.From, "+"), "to": strings.TrimPrefix(m.To, "+"), "messageId": id,
		"text": m.Text, "type": typ, "keyword": strings.ToUpper(firstWord(m.Text)),
		"message-timestamp": now.UTC().Format("2006-01-02 15:04:05"), "timestamp": strconv.FormatInt(now.Unix(), 10),
		"nonce": adapters.RandomHex(16),
	}
	if a.apiKey != "" {
		p["api-key"] = a.apiKey
	}
	if m.PartsRef != "" {
		p["concat"], p["concat-ref"] = "true", m.PartsRef
		p["concat-total"], p["concat-part"] = strconv.Itoa(m.Parts), strconv.Itoa(m.Part)
	}
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	r := &adapters.Request{Method: http.MethodPost, URL: target, Header: h, Body: []byte(form.Encode())}
	return r, a.Resign(r, now)
}

// Resign sets timestamp to now and a fresh sig, keeping the request's
// encoding (query for GET, JSON or form for POST).
func (a *Adapter) Resign(r *adapters.Request, now time.Time) error {
	p, err := params(r)
	if err != nil {
		return err
	}
	delete(p, "sig")
	p["timestamp"] = strconv.FormatInt(now.Unix(), 10)
	p["sig"] = hex.EncodeToString(Signature(a.method, a.secret, p))
	switch ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); {
	case r.Method == http.MethodGet:
		q := url.Values{}
		for k, v := range p {
			q.Set(k, v)
		}
		u := *r.URL
		u.RawQuery = q.Encode()
		r.URL = &u
	case ct == "application/json":
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		r.Body = b
	default:
		f := url.Values{}
		for k, v := range p {
			f.Set(k, v)
		}
		r.Body = []byte(f.Encode())
	}
	return nil
}

// params reads the parameters from the query (GET), a JSON object or a form
// (POST). Mixing body and query is unsupported by Vonage and not read.
func params(r *adapters.Request) (map[string]string, error) {
	if r.Method == http.MethodGet {
		v, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, adapters.Malformed("query: " + err.Error())
		}
		return single(v)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" || (ct == "" && bytes.HasPrefix(bytes.TrimSpace(r.Body), []byte("{"))) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(r.Body, &raw); err != nil {
			return nil, adapters.Malformed("json: not an object")
		}
		p := make(map[string]string, len(raw))
		for k, v := range raw {
			var s string
			if err := json.Unmarshal(v, &s); err == nil {
				p[k] = s
				continue
			}
			var n json.Number
			dec := json.NewDecoder(bytes.NewReader(v))
			dec.UseNumber()
			if err := dec.Decode(&n); err == nil {
				p[k] = n.String()
				continue
			}
			if t := string(bytes.TrimSpace(v)); t == "true" || t == "false" {
				p[k] = t
				continue
			}
			return nil, adapters.Malformed("json: field " + strconv.Quote(k) + " is not a scalar")
		}
		return p, nil
	}
	v, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return nil, adapters.Malformed("form: " + err.Error())
	}
	return single(v)
}

func single(v url.Values) (map[string]string, error) {
	p := make(map[string]string, len(v))
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, adapters.Malformed("repeated parameter " + k)
		}
		p[k] = vs[0]
	}
	return p, nil
}

func sortedKeys(m map[string]string) []string {
	v := make(url.Values, len(m))
	for k := range m {
		v[k] = nil
	}
	return adapters.SortedKeys(v)
}

func firstWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// MaxSkew is the accepted distance of `timestamp` from now.
func (a *Adapter) MaxSkew() time.Duration { return MaxSkew }
