// Package provision points provider numbers' inbound SMS webhooks (and,
// for numbers that take calls, Twilio's voice URL) at mogate through the
// providers' REST APIs (docs/providers.md, `mogate numbers`).
//
// Each provider type with an API has one small Client: List reports the
// account's numbers with where their inbound SMS go now, Point sends one
// number's inbound SMS to a URL with method POST. Twilio, Vonage and Plivo
// use their official SDKs (twilio-go rest/api/v2010, vonage-go-sdk's numbers
// API, plivo-go); Telnyx is plain HTTP (REST v2). Sync and Inspect turn the
// clients' answers into one row per pool number.
//
// The package lives under adapters/ because, like the adapters, it may
// import provider SDKs and nothing of the gateway, the matcher or the pool;
// adapters/registry's table of provider types names each type's client.
package provision

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/mogate/mogate/config"
)

// Number is one number of a provider account as its REST API reports it.
type Number struct {
	Number string // E.164
	ID     string // the provider's id for it (Twilio PN sid, Telnyx id, digits for Vonage and Plivo)
	// URL and Method are where its inbound SMS go now; Method "" means the
	// provider does not set one per number (Vonage: an account setting;
	// Telnyx: always POST).
	URL, Method string
	// Holder names the shared setting that holds URL ("application 123
	// (shop)", "messaging profile 4a…"), "" when the number holds it; HolderID
	// identifies it: numbers with the same HolderID change together.
	Holder, HolderID string
	// Missing, when set, is shown instead of URL: the number is not in
	// sync however URL reads ("no application": Point attaches one; "SMS
	// application AP…": Point detaches it; "no messaging profile").
	Missing string
	// Blocked, when set, says why Point cannot fix the number and what to
	// do instead.
	Blocked string
	Note    string // what the row should say about the number's setting
	Country string // ISO 3166 (Vonage's update needs it)
	extra   string // provider-specific (Twilio: the SMS application sid)

	// Where its inbound calls go now, for a VoiceClient's numbers (Twilio:
	// voice_url, voice_method), with VoiceMissing and VoiceBlocked as
	// Missing and Blocked are for messages.
	VoiceURL, VoiceMethod      string
	VoiceMissing, VoiceBlocked string
	voiceExtra                 string // Twilio: the voice application sid
}

// Action is what Point did.
type Action string

// Actions of Point and Sync rows.
const (
	Unchanged          Action = "unchanged"
	Updated            Action = "updated"
	WouldUpdate        Action = "would update"
	CreatedApplication Action = "created application"
	NotFound           Action = "not found"
)

// Client is the REST API of one provider account.
type Client interface {
	// List returns every number of the account, following the API's paging.
	List(ctx context.Context) ([]Number, error)
	// Point makes n's inbound SMS go to url with method POST (for a number
	// whose setting is shared, the holder's). It returns what it did and a
	// note for the row ("" when there is nothing to say).
	Point(ctx context.Context, n Number, url string) (Action, string, error)
}

// VoiceClient is a Client whose provider can also send a number's inbound
// calls to a URL (Twilio's VoiceUrl), for numbers whose entry lists the
// call channel.
type VoiceClient interface {
	Client
	// PointVoice makes n's inbound calls request url with method POST. It
	// returns what it did and a note for the row.
	PointVoice(ctx context.Context, n Number, url string) (Action, string, error)
}

// transport sends requests for the provider's public API host to api_url
// instead (the SDKs' base URLs are fixed or, for plivo-go's application
// calls, ignored) and remembers how the last call failed, in its own
// words: the SDKs' errors quote their default host rather than the one
// dialled, echo error bodies (which may echo the request), or, for
// vonage-go-sdk, panic; plivo-go treats an empty error body as success.
type transport struct {
	hosts []string // the public API hosts to rewrite
	base  *url.URL // api_url; nil: no rewriting
	next  http.RoundTripper
	code  func(body []byte) string // the numeric error code of an error body; nil: none
	hint  string                   // the entry's keys to check after a 401 or 403

	mu     sync.Mutex
	failed *callError // the first failure since reset
	origin string     // the origin last dialled
}

func newTransport(apiURL string, next http.RoundTripper, hosts ...string) (*transport, error) {
	t := &transport{hosts: hosts, next: next}
	if t.next == nil {
		t.next = http.DefaultTransport
	}
	if apiURL != "" {
		if err := config.CheckAPIURL(apiURL); err != nil {
			return nil, fmt.Errorf("api_url %w", err)
		}
		u, _ := url.Parse(strings.TrimRight(apiURL, "/"))
		t.base = u
	}
	return t, nil
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.base != nil && (len(t.hosts) == 0 || contains(t.hosts, r.URL.Host)) {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, ""
		r.URL.Path = t.base.Path + r.URL.Path
		r.URL.RawPath = ""
	}
	origin := r.URL.Scheme + "://" + r.URL.Host
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		t.fail(&callError{origin: origin, err: err})
		return nil, err
	}
	if resp.StatusCode >= 400 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		e := &callError{origin: origin, status: resp.StatusCode, hint: t.hint}
		if t.code != nil {
			e.code = t.code(b)
		}
		t.fail(e)
		// The SDK reads a body that cannot echo anything.
		resp.Body = io.NopCloser(strings.NewReader(fmt.Sprintf(`{"status": %d}`, resp.StatusCode)))
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
	}
	t.mu.Lock()
	t.origin = origin
	t.mu.Unlock()
	return resp, nil
}

func (t *transport) fail(e *callError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.origin = e.origin
	if t.failed == nil {
		t.failed = e
	}
}

// call runs one SDK call and says how it failed: by the transport's
// record when a request failed (whatever the SDK made of it: an error
// quoting another host or an echoed body, no error, a panic), else the
// SDK's error, on its own (a 2xx answer the SDK could not read).
func (t *transport) call(f func() error) (err error) {
	t.mu.Lock()
	t.failed, t.origin = nil, ""
	t.mu.Unlock()
	defer func() {
		r := recover()
		t.mu.Lock()
		failed, origin := t.failed, t.origin
		t.mu.Unlock()
		switch {
		case failed != nil:
			err = failed
		case r != nil:
			err = fmt.Errorf("the provider's SDK failed unexpectedly on the answer of %s", dash(origin))
		case err != nil:
			err = fmt.Errorf("unexpected answer from %s: %s", dash(origin), inWords(err))
		}
	}()
	return f()
}

func dash(s string) string {
	if s == "" {
		return "the API"
	}
	return s
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func client(hc *http.Client, t http.RoundTripper) *http.Client {
	c := &http.Client{Transport: t}
	if hc != nil {
		c.Timeout, c.CheckRedirect, c.Jar = hc.Timeout, hc.CheckRedirect, hc.Jar
	}
	return c
}

func next(hc *http.Client) http.RoundTripper {
	if hc == nil || hc.Transport == nil {
		return http.DefaultTransport
	}
	return hc.Transport
}

var credParam = regexp.MustCompile(`(?i)((?:api_secret|api_key|auth_token|password)=)[^&\s"']*`)

// Scrub returns err's text without any of secrets (also URL-escaped) and
// without credential query parameters, on one line of at most 300 bytes.
func Scrub(err error, secrets ...string) string {
	msg := err.Error()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	msg = credParam.ReplaceAllString(msg, "${1}[redacted]")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}

// e164 puts the + before a number the API reports as digits.
func e164(s string) string {
	if s == "" || strings.HasPrefix(s, "+") {
		return s
	}
	return "+" + s
}
