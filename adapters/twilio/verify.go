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
	"slices"
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
	// An empty query has no bodySHA256: not parsed (URL.Query builds a map).
	if r.URL.RawQuery != "" {
		if h := r.URL.Query().Get("bodySHA256"); h != "" {
			sum := sha256.Sum256(r.Body)
			return a.validURL(u, nil, "", sig) && subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(h)) == 1
		}
	}
	form, err := r.Params()
	if err != nil {
		return false
	}
	if a.validURL(u, form, "", sig) {
		return true
	}
	return form.Has(stirParam) && a.validURL(u, form, stirParam, sig)
}

// validURL tries u as seen, then its other port variant: with the default
// port added when u has none, with the port removed when it has one.
func (a *Adapter) validURL(u string, form adapters.Params, skip, sig string) bool {
	st := a.signer()
	defer a.release(st)
	st.buf = append(st.buf[:0], u...)
	st.buf, st.sorted = appendParams(st.buf, st.sorted, form, skip)
	if st.signs(st.buf, sig) {
		return true
	}
	other, ok := otherPort(u)
	if !ok {
		return false
	}
	return st.signs(append([]byte(other), st.buf[len(u):]...), sig)
}

// signer is an HMAC-SHA1 keyed with the auth token and the buffers of one
// check. Keying an HMAC allocates its two digests and pads, and hashes two
// blocks: the adapter keeps signers for reuse (Adapter.signers) rather
// than key one per request.
type signer struct {
	mac    hash.Hash
	buf    []byte          // the signed bytes: the URL, then the parameters
	sorted adapters.Params // the parameters, sorted by name
	sum    [sha1.Size]byte
}

// maxKept bounds the buffer of a signer kept for reuse: a rare large form
// does not stay in memory.
const maxKept = 16 << 10

func (a *Adapter) signer() *signer {
	if st, ok := a.signers.Get().(*signer); ok {
		return st
	}
	return &signer{mac: hmac.New(sha1.New, []byte(a.token))}
}

// maxKeptParams bounds the sort space of a signer kept for reuse (a form
// of many parameters, unsigned or not, does not stay in memory either).
const maxKeptParams = 1024

func (a *Adapter) release(st *signer) {
	if cap(st.buf) <= maxKept && cap(st.sorted) <= maxKeptParams {
		clear(st.sorted) // the strings belong to a request's form
		a.signers.Put(st)
	}
}

// appendParams appends name+first value of every parameter but skip,
// sorted by name (twilio-go keeps the first value of a repeated name), to
// b; sorted is scratch space, returned for reuse.
func appendParams(b []byte, sorted, form adapters.Params, skip string) ([]byte, adapters.Params) {
	sorted = append(sorted[:0], form...)
	// Stable: the values of a name stay in the order sent, its first first.
	slices.SortStableFunc(sorted, func(x, y adapters.Param) int { return strings.Compare(x.Name, y.Name) })
	for i, p := range sorted {
		if p.Name != skip && (i == 0 || p.Name != sorted[i-1].Name) {
			b = append(append(b, p.Name...), p.Value...)
		}
	}
	return b, sorted
}

// signs reports whether sig is the Base64 HMAC of b.
func (st *signer) signs(b []byte, sig string) bool {
	st.mac.Reset()
	st.mac.Write(b)
	var enc [28]byte // base64 of 20 bytes
	base64.StdEncoding.Encode(enc[:], st.mac.Sum(st.sum[:0]))
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
