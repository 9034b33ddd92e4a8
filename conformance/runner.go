package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
)

// Target is a running mogate to replay against.
type Target struct {
	// BaseURL is where requests are sent.
	BaseURL string
	// PublicURL is what the target's public_url is (signatures are made
	// for it); BaseURL when empty. They differ behind a proxy when the
	// runner reaches the target another way than the providers do.
	PublicURL string
	// PublicURLFrom says where PublicURL comes from, for the explanation
	// of a refusal: "--public-url", "--target", or the configuration file
	// ("the public_url of mogate.yaml").
	PublicURLFrom string
	APIKey        string // APIKey when empty
	Client        *http.Client
	// AdapterHTTP is the client the runner's own adapters use to fetch
	// what a scheme needs (SNS certificates); nil: a default client.
	AdapterHTTP *http.Client
}

// Result is the outcome of one variant of one fixture.
type Result struct {
	Provider, Case, Variant string
	OK                      bool
	Detail                  string
	limited                 bool // a limit of the target stopped it (ErrLimited)
}

// LiveSkip lists providers whose requests a live target cannot check
// against test keys: their certificate must come from the provider's own
// hosts. `go test ./conformance/...` covers them in-process.
var LiveSkip = map[string]string{
	"sns": "its signing certificate must be fetched from an AWS SNS host; covered in-process by go test ./conformance/...",
}

// MaxSkewer is implemented by adapters whose scheme signs a time.
type MaxSkewer interface{ MaxSkew() time.Duration }

// Run replays fixtures (of provider, when not empty) against t.
func Run(ctx context.Context, t Target, fixtures []Fixture, provider string) []Result {
	if t.PublicURL == "" {
		t.PublicURL = t.BaseURL
	}
	t.BaseURL, t.PublicURL = strings.TrimRight(t.BaseURL, "/"), strings.TrimRight(t.PublicURL, "/")
	if t.APIKey == "" {
		t.APIKey = APIKey
	}
	if t.Client == nil {
		t.Client = &http.Client{Timeout: 30 * time.Second}
	}
	var out []Result
	var targetURL string // the target's public_url, once a page_url showed it
	for _, f := range fixtures {
		if provider != "" && f.Provider != provider {
			continue
		}
		res := runFixture(ctx, t, f, &targetURL)
		out = append(out, res...)
		if slices.ContainsFunc(res, func(r Result) bool { return r.limited }) {
			break // every further fixture would meet the same limit
		}
	}
	return out
}

// signers builds the provider's adapter with the fixture's secrets, and one
// with wrong secrets for the bad-signature variant.
func signers(f Fixture, hc *http.Client) (good, bad adapters.Adapter, err error) {
	mk := func(secrets map[string]string) (adapters.Adapter, error) {
		p := config.Provider{Name: f.Provider, Type: f.Provider}
		for k, v := range secrets {
			if k == signingOnly {
				continue
			}
			if err := p.Set(k, v); err != nil {
				return nil, err
			}
		}
		p.PrivateKey = config.Secret(secrets[signingOnly])
		ads, err := registry.Build([]config.Provider{p}, registry.Env{HTTP: hc})
		if err != nil {
			return nil, err
		}
		return ads[f.Provider], nil
	}
	if good, err = mk(f.Secrets); err != nil {
		return nil, nil, err
	}
	wrong := map[string]string{}
	for k, v := range f.Secrets {
		wrong[k] = v
	}
	typ, _ := registry.Lookup(f.Provider)
	for _, k := range typ.Keys {
		// A wrong webhook secret; REST credentials play no part in signatures.
		if v, ok := wrong[k.Name]; ok && k.Secret && !k.REST {
			wrong[k.Name] = "wrong-" + v
		}
	}
	if k, ok := wrong[signingOnly]; ok {
		// Another key pair signs: a valid signature the target must refuse.
		wrong[signingOnly] = "d3JvbmctcHJpdmF0ZS1rZXktc2VlZC0zMmJ5dGVzISE=" // an Ed25519 seed
		if strings.HasPrefix(k, "-----BEGIN") {
			rk, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				return nil, nil, err
			}
			wrong[signingOnly] = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}))
		}
	}
	bad, err = mk(wrong)
	return good, bad, err
}

func newVars() vars {
	now := time.Now().UTC()
	n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
	id := adapters.RandomHex(8)
	return vars{
		"code": fmt.Sprintf("%06d", n.Int64()), "message_id": "cf" + id + "a", "message_id_2": "cf" + id + "b",
		"message_id_3": "cf" + id + "c", "ref": id[:6], "unix": strconv.FormatInt(now.Unix(), 10),
		"iso": now.Format("2006-01-02T15:04:05.000Z"), "vonage_time": now.Format("2006-01-02 15:04:05"),
		"vonage_time_form": now.Format("2006-01-02%2015:04:05"),
	}
}

// build expands a recorded request and signs it at now with ad.
func build(t Target, r Request, v vars, ad adapters.Adapter, now time.Time) (*adapters.Request, error) {
	u, err := url.Parse(t.PublicURL + v.expand(r.Path))
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for k, val := range r.Headers {
		h.Set(k, v.expand(val))
	}
	req := &adapters.Request{Method: r.Method, URL: u, Header: h, Body: []byte(v.expand(r.Body))}
	rs, ok := ad.(adapters.Resigner)
	if !ok {
		return nil, fmt.Errorf("conformance: provider adapter cannot re-sign")
	}
	if len(r.SignedWithout) == 0 {
		return req, rs.Resign(req, now)
	}
	// Sign the form without the parameters the provider adds afterwards,
	// and send it with them.
	form, err := url.ParseQuery(string(req.Body))
	if err != nil {
		return nil, fmt.Errorf("conformance: signed_without needs a form body: %w", err)
	}
	for _, k := range r.SignedWithout {
		if !form.Has(k) {
			return nil, fmt.Errorf("conformance: signed_without names %s, which the body lacks", k)
		}
		form.Del(k)
	}
	signed := &adapters.Request{Method: req.Method, URL: req.URL, Header: req.Header, Body: []byte(form.Encode())}
	return req, rs.Resign(signed, now)
}

func (t Target) send(ctx context.Context, r *adapters.Request) (reply, error) {
	target := t.BaseURL + r.URL.RequestURI()
	hr, err := http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(r.Body))
	if err != nil {
		return reply{}, err
	}
	hr.Header = r.Header.Clone()
	resp, err := t.Client.Do(hr)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	date, _ := http.ParseTime(resp.Header.Get("Date"))
	return reply{status: resp.StatusCode, body: string(b), date: date}, nil
}

type verification struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	VerifiedNumber string `json:"verified_number"`
	Code           string `json:"code"`
	VerifiedAt     string `json:"verified_at"`
	MessageID      string `json:"message_id"`
	UI             struct {
		PageURL string `json:"page_url"`
	} `json:"ui"`
	Error struct {
		Code, Message string
	} `json:"error"`
	retryAfter time.Duration // from a 429's Retry-After
}

func (t Target) api(ctx context.Context, method, p string, body any) (int, verification, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.BaseURL+p, rd)
	if err != nil {
		return 0, verification{}, err
	}
	req.Header.Set("Authorization", "Bearer "+t.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.Client.Do(req)
	if err != nil {
		return 0, verification{}, err
	}
	defer resp.Body.Close()
	var v verification
	_ = json.NewDecoder(resp.Body).Decode(&v)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		v.retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, v, nil
}

// runFixture runs the variants of one fixture; each works on fresh
// placeholder values and fresh verifications. known is the target's
// public_url as the page_urls of earlier fixtures showed it ("" unknown):
// a fixture that creates no verification (a hidden sender) explains a
// refusal with it.
func runFixture(ctx context.Context, t Target, f Fixture, known *string) []Result {
	res := func(variant string, err error) Result {
		r := Result{Provider: f.Provider, Case: strings.TrimPrefix(f.Name, f.Provider+"/"), Variant: variant, OK: err == nil, limited: errors.Is(err, ErrLimited)}
		if err != nil {
			r.Detail = err.Error()
		}
		return r
	}
	if f.Handshake {
		return []Result{res("handshake", runHandshake(ctx, t, f))}
	}
	good, bad, err := signers(f, t.AdapterHTTP)
	if err != nil {
		return []Result{res("setup", err)}
	}
	var out []Result

	// Parse: the adapter turns the request into the expected events.
	v := newVars()
	out = append(out, res("parse", checkParse(t, f, v, good)))

	// Negative variants: refused, nothing recorded.
	type negative struct {
		name string
		make func(v vars) (*adapters.Request, error)
	}
	negatives := []negative{
		{"bad signature", func(v vars) (*adapters.Request, error) { return build(t, f.Requests[0], v, bad, time.Now()) }},
	}
	// HTTP Basic authenticates the caller but signs no payload: a tampered
	// body cannot be told apart, so that variant does not apply.
	if _, basic := good.(adapters.Challenger); !basic {
		negatives = append(negatives, negative{"tampered body", func(v vars) (*adapters.Request, error) {
			r, err := build(t, f.Requests[0], v, good, time.Now())
			if err == nil {
				tamper(r, v)
			}
			return r, err
		}})
	}
	if ms, ok := good.(MaxSkewer); ok {
		negatives = append(negatives, negative{"stale timestamp", func(v vars) (*adapters.Request, error) {
			return build(t, f.Requests[0], v, good, time.Now().Add(-2*ms.MaxSkew()-time.Minute))
		}})
	}
	// One set of verifications serves every variant (so a run stays under
	// the target's per-number create limit): the refused variants must
	// leave them pending, the delivery verifies them. Whatever is still
	// pending at the end is cancelled.
	v = newVars()
	ids, targetURL, err := createVerifications(ctx, t, f, v)
	if targetURL != "" {
		*known = targetURL
	} else {
		targetURL = *known
	}
	if err != nil {
		for _, n := range negatives {
			out = append(out, res(n.name, err))
		}
		return append(out, res("deliver", err))
	}
	defer cancelPending(ctx, t, ids)
	for _, n := range negatives {
		out = append(out, res(n.name, runNegative(ctx, t, ids, func() (*adapters.Request, error) { return n.make(v) })))
	}
	// Positive, then the duplicate delivery.
	var sent []*adapters.Request
	err = func() error {
		for i, r := range f.Requests {
			req, err := build(t, r, v, good, time.Now())
			if err != nil {
				return err
			}
			rp, err := t.send(ctx, req)
			if err != nil {
				return err
			}
			want := 200
			if i == len(f.Requests)-1 {
				want = f.Expect.Status
			}
			if rp.status != want && (rp.status == 401 || rp.status == 403) {
				return fmt.Errorf("request %d %s", i+1, refusal(t, f, good, req, rp, targetURL))
			}
			if rp.status != want {
				return fmt.Errorf("request %d answered %d, want %d: %.200s", i+1, rp.status, want, rp.body)
			}
			if err := expectBody(f, i, rp); err != nil {
				return err
			}
			sent = append(sent, req)
		}
		if f.Expect.Pending {
			return expectPending(ctx, t, ids)
		}
		return expectVerified(ctx, t, f, v, ids)
	}()
	out = append(out, res("deliver", err))
	if err != nil {
		return out
	}
	before := snapshot(ctx, t, ids)
	err = func() error {
		for i, req := range sent {
			rp, err := t.send(ctx, req)
			if err != nil {
				return err
			}
			if want := f.Expect.Status; i == len(sent)-1 && rp.status != want {
				return fmt.Errorf("redelivery answered %d, want %d: %.200s", rp.status, want, rp.body)
			}
			if err := expectBody(f, i, rp); err != nil {
				return fmt.Errorf("redelivery: %w", err)
			}
		}
		if after := snapshot(ctx, t, ids); !reflect.DeepEqual(before, after) {
			return fmt.Errorf("redelivery changed verifications: %v -> %v", before, after)
		}
		return nil
	}()
	return append(out, res("duplicate", err))
}

func checkParse(t Target, f Fixture, v vars, ad adapters.Adapter) error {
	var got []Event
	for _, r := range f.Requests {
		req, err := build(t, r, v, ad, time.Now())
		if err != nil {
			return err
		}
		if err := ad.Verify(req); err != nil {
			return fmt.Errorf("own signature refused: %w", err)
		}
		ins, err := ad.Parse(req)
		if err != nil {
			return err
		}
		for _, in := range ins {
			got = append(got, Event{MessageID: in.MessageID, From: in.From, To: in.To, Text: in.Text, Parts: in.Parts, Part: in.Part, PartsRef: in.PartsRef,
				ToID: in.ToID, Channel: in.Channel, SenderHidden: in.SenderHidden, Attestation: in.Attestation, LineType: in.LineType, Carrier: in.Carrier, SenderCountry: in.SenderCountry})
		}
	}
	var want []Event
	for _, e := range f.Expect.Events {
		e.MessageID, e.Text, e.PartsRef = v.expand(e.MessageID), v.expand(e.Text), v.expand(e.PartsRef)
		e.VerifiedNumber = ""
		want = append(want, e)
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("events\n got  %+v\n want %+v", got, want)
	}
	return nil
}

// runHandshake sends a handshake fixture's GET as recorded and checks the
// answer.
func runHandshake(ctx context.Context, t Target, f Fixture) error {
	v := newVars()
	v["verify_token"] = f.Secrets["verify_token"]
	r := f.Requests[0]
	u, err := url.Parse(t.PublicURL + v.expand(r.Path))
	if err != nil {
		return err
	}
	h := http.Header{}
	for k, val := range r.Headers {
		h.Set(k, v.expand(val))
	}
	rp, err := t.send(ctx, &adapters.Request{Method: r.Method, URL: u, Header: h})
	if err != nil {
		return err
	}
	if rp.status != f.Expect.Status {
		return fmt.Errorf("answered %d, want %d: %.200s", rp.status, f.Expect.Status, rp.body)
	}
	if b := f.Expect.Body; b != nil && rp.body != v.expand(*b) {
		return fmt.Errorf("answered %q, want %q", rp.body, v.expand(*b))
	}
	return nil
}

// runNegative sends a request the target must refuse and checks that the
// verifications ids stay pending.
func runNegative(ctx context.Context, t Target, ids []string, make func() (*adapters.Request, error)) error {
	req, err := make()
	if err != nil {
		return err
	}
	rp, err := t.send(ctx, req)
	if err != nil {
		return err
	}
	if rp.status != 401 && rp.status != 403 {
		return fmt.Errorf("answered %d, want 401 or 403: %.200s", rp.status, rp.body)
	}
	for _, id := range ids {
		_, ver, err := t.api(ctx, "GET", "/v1/verifications/"+id, nil)
		if err != nil {
			return err
		}
		if ver.Status != "pending" {
			return fmt.Errorf("a refused request changed verification %s to %s", id, ver.Status)
		}
	}
	return nil
}

// tamper changes the message after signing: the code in the body (or the
// query, for a GET) becomes another code.
func tamper(r *adapters.Request, v vars) {
	other := fmt.Sprintf("%06d", (mustAtoi(v["code"])+1)%1_000_000)
	if len(r.Body) > 0 && bytes.Contains(r.Body, []byte(v["code"])) {
		r.Body = bytes.ReplaceAll(r.Body, []byte(v["code"]), []byte(other))
		return
	}
	if len(r.Body) > 0 {
		r.Body = append(r.Body, ' ')
		return
	}
	u := *r.URL
	u.RawQuery = strings.ReplaceAll(u.RawQuery, v["code"], other)
	r.URL = &u
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
