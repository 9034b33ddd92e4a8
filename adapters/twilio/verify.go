package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"strings"

	"github.com/mogate/mogate/adapters"
)

// stirParam is the voice parameter Twilio may add after signing: whether
// its signature covers it is not documented (docs/channels.md), so a
// request whose signature fails over every parameter is checked again
// without it.
const stirParam = "StirVerstat"

// valid reports whether sig signs r. It computes what twilio-go's
// RequestValidator.ValidateBody (POST) or Validate (GET) computes, and
// accepts what they accept, but stops at the first URL variant that
// matches: the URL as mogate saw it first, the other port variant only
// when that fails. Then, for a request carrying StirVerstat (in the form,
// or in the query of a GET), the same over the request without it.
func (a *Adapter) valid(r *adapters.Request, sig string) bool {
	u := r.URL.String()
	if r.Method == http.MethodGet {
		if a.validURL(u, nil, "", sig) {
			return true
		}
		without, ok := withoutParam(r.URL, stirParam)
		return ok && a.validURL(without, nil, "", sig)
	}
	if h := r.URL.Query().Get("bodySHA256"); h != "" {
		sum := sha256.Sum256(r.Body)
		return a.validURL(u, nil, "", sig) && subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(h)) == 1
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		return false
	}
	if a.validURL(u, form, "", sig) {
		return true
	}
	_, stir := form[stirParam]
	return stir && a.validURL(u, form, stirParam, sig)
}

// validURL tries u as seen, then its other port variant: with the default
// port added when u has none, with the port removed when it has one.
func (a *Adapter) validURL(u string, form url.Values, skip, sig string) bool {
	params := concat(form, skip)
	mac := hmac.New(sha1.New, []byte(a.token))
	if signs(mac, u, params, sig) {
		return true
	}
	other, ok := otherPort(u)
	if !ok {
		return false
	}
	mac.Reset()
	return signs(mac, other, params, sig)
}

// concat returns name+first value of every parameter but skip, sorted by
// name (twilio-go keeps the first value of a repeated name).
func concat(form url.Values, skip string) []byte {
	n := 0
	for k, vs := range form {
		n += len(k) + len(vs[0])
	}
	b := make([]byte, 0, n)
	for _, k := range adapters.SortedKeys(form) {
		if k != skip {
			b = append(append(b, k...), form[k][0]...)
		}
	}
	return b
}

// signs reports whether sig is the Base64 HMAC of u followed by params.
func signs(mac hash.Hash, u string, params []byte, sig string) bool {
	mac.Write([]byte(u))
	mac.Write(params)
	var sum [sha1.Size]byte
	var enc [28]byte // base64 of 20 bytes
	base64.StdEncoding.Encode(enc[:], mac.Sum(sum[:0]))
	return subtle.ConstantTimeCompare(enc[:], []byte(sig)) == 1
}

// withoutParam returns u without the query parameter name, the rest of
// the query byte for byte; false when the query does not have it.
func withoutParam(u *url.URL, name string) (string, bool) {
	parts := strings.Split(u.RawQuery, "&")
	kept := make([]string, 0, len(parts))
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if key, err := url.QueryUnescape(k); err == nil && key == name {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(parts) {
		return "", false
	}
	c := *u
	c.RawQuery = strings.Join(kept, "&")
	return c.String(), true
}

// otherPort returns the variant of u twilio-go checks besides u itself:
// u with the scheme's default port added (u has no port) or with its port
// removed (u has one), re-serialised by net/url as twilio-go does.
func otherPort(u string) (string, bool) {
	p, err := url.Parse(u)
	if err != nil {
		return "", false
	}
	if p.Port() != "" {
		p.Host = strings.Split(p.Host, ":")[0]
		return p.String(), true
	}
	port := 80
	if p.Scheme == "https" {
		port = 443
	}
	p.Host = fmt.Sprintf("%s:%d", p.Host, port)
	return p.String(), true
}
