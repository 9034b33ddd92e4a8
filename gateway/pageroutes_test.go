package gateway

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"rsc.io/qr"
)

// routedStore is a store double that gives sessions the routes (and, once
// verified, the route that verified them) a test sets, as a store that
// keeps routes does: the memory store keeps none yet.
type routedStore struct {
	matcher.Store
	mu     sync.Mutex
	routes map[string][]matcher.Route // by session id
	via    map[string]matcher.Route
}

// withRoutes puts a routedStore in front of h's store.
func withRoutes(h *harness) *routedStore {
	rs := &routedStore{Store: h.s.store, routes: map[string][]matcher.Route{}, via: map[string]matcher.Route{}}
	h.s.store = rs
	return rs
}

func (rs *routedStore) set(id string, routes ...matcher.Route) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.routes[id] = routes
}

func (rs *routedStore) with(s matcher.Session, err error) (matcher.Session, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if r, ok := rs.routes[s.ID]; ok {
		s.Routes, s.To = r, r[0].To
	}
	if s.Status == matcher.Verified {
		s.Via = rs.via[s.ID]
	}
	return s, err
}

func (rs *routedStore) ByPageToken(ctx context.Context, token string) (matcher.Session, error) {
	return rs.with(rs.Store.ByPageToken(ctx, token))
}

func (rs *routedStore) Wait(ctx context.Context, id string) (matcher.Session, error) {
	return rs.with(rs.Store.Wait(ctx, id))
}

var (
	waRoute   = matcher.Route{Channel: matcher.ChannelWhatsApp, To: metaNumber}
	smsRoute  = matcher.Route{Channel: matcher.ChannelSMS, To: "+14155550100"}
	callRoute = matcher.Route{Channel: matcher.ChannelCall, To: "+14155550100"}
)

const (
	androidUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile Safari/537.36"
	iphoneUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1"
)

// acmeHarness serves whatsappYAML with the shop key's app_name "Acme & Co"
// (markup in it must stay text), and routes from a routedStore.
func acmeHarness(t *testing.T) (*harness, *routedStore) {
	t.Helper()
	h := newHarnessWith(t, whatsappYAML, func(c *config.Config) { c.APIKeys[0].AppName = "Acme & Co" })
	return h, withRoutes(h)
}

// routedPage creates a verification, gives it routes and returns its page
// path, the page (unescaped) and the created verification.
func routedPage(t *testing.T, h *harness, rs *routedStore, body, ua string, routes ...matcher.Route) (string, string, map[string]any) {
	t.Helper()
	v := h.mustCreate(body)
	if len(routes) > 0 {
		rs.set(v["id"].(string), routes...)
	}
	path := strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL)
	w := h.do("GET", path, "", nil, http.Header{"User-Agent": {ua}})
	if w.Code != 200 {
		t.Fatalf("page = %d %s", w.Code, w.Body)
	}
	return path, html.UnescapeString(w.Body.String()), v
}

// ordered fails unless page holds each of wants, in that order.
func ordered(t *testing.T, page string, wants ...string) {
	t.Helper()
	at := 0
	for _, w := range wants {
		i := strings.Index(page[at:], w)
		if i < 0 {
			t.Errorf("page lacks %q (after byte %d):\n%s", w, at, page)
			return
		}
		at += i + len(w)
	}
}

func qrOf(t *testing.T, uri string) []byte {
	t.Helper()
	code, err := qr.Encode(uri, qr.M)
	if err != nil {
		t.Fatal(err)
	}
	code.Scale = 8
	return code.PNG()
}

// TestPageRoutes: one button per route in the routes' order, each with its
// link and what it does; the WhatsApp text names the app and is shown on
// the page too; a call says it is declined and free; the page's QR is the
// SMS link, or the WhatsApp link when that is the only route.
func TestPageRoutes(t *testing.T) {
	h, rs := acmeHarness(t)
	const sender = "+14155550123"
	body := `{"number": "` + sender + `"}`

	path, page, v := routedPage(t, h, rs, body, androidUA, waRoute, smsRoute)
	code := v["code"].(string)
	ordered(t, page, "<title>Verify your phone number · Acme & Co</title>", `<h1>Verify your phone number</h1>`, `<p id="app">For Acme & Co</p>`,
		`<p id="instruction">Choose one way:</p>`, `<bdi>`+code+`</bdi>`,
		`id="tap-whatsapp" data-channel="whatsapp" href="https://wa.me/15550984277?text=Acme%20%26%20Co%20code%20`+code+`">Send with WhatsApp</a>`,
		`Sends “Acme & Co code `+code+`” to +1 555-098-4277 on WhatsApp.`,
		`id="tap" data-channel="sms" href="sms:+14155550100?body=`+code+`">Send SMS</a>`,
		`Text `+code+` to +1 415-555-0100 to verify your phone number.`,
		`Nothing received yet.`, `Try another way:`, `data-channel="whatsapp" href="https://wa.me/`, `>Send with WhatsApp</a>`, `data-channel="sms" href="sms:`, `>Send SMS</a>`,
		`src="`+path+`/qr.png"`)
	if w := h.do("GET", path+"/qr.png", "", nil, nil); !bytes.Equal(w.Body.Bytes(), qrOf(t, "sms:+14155550100?body="+code)) {
		t.Error("with an SMS route the page's QR is not the sms: link")
	}
	if _, page, _ := routedPage(t, h, rs, `{"number": "+14155550124"}`, iphoneUA, waRoute, smsRoute); !strings.Contains(page, `href="sms:+14155550100&body=`) {
		t.Error("the iPhone's SMS button does not use &body=")
	}

	// WhatsApp only: its words, its number, and the QR of its link.
	path, page, v = routedPage(t, h, rs, `{"number": "+14155550125"}`, androidUA, waRoute)
	code = v["code"].(string)
	wa := "https://wa.me/15550984277?text=Acme%20%26%20Co%20code%20" + code
	ordered(t, page, `<p id="instruction">Sends “Acme & Co code `+code+`” to +1 555-098-4277 on WhatsApp.</p>`, `<bdi>`+code+`</bdi>`, `<bdi>+1 555-098-4277</bdi>`,
		`href="`+wa+`">Send with WhatsApp</a>`, `Check that you are using the phone you are verifying`)
	if strings.Contains(page, `id="tap"`) || strings.Contains(page, "sms:") || strings.Contains(page, "Try another way") {
		t.Errorf("a WhatsApp-only page offers SMS:\n%s", page)
	}
	if w := h.do("GET", path+"/qr.png", "", nil, nil); w.Code != 200 || !bytes.Equal(w.Body.Bytes(), qrOf(t, wa)) {
		t.Errorf("the WhatsApp-only page's QR (%d) is not the wa.me link", w.Code)
	}
	// The API's QR stays the sms: link of ui.sms_uri.
	if w := h.do("GET", "/v1/verifications/"+v["id"].(string)+"/qr.png", shopKey, nil, nil); !bytes.Equal(w.Body.Bytes(), qrOf(t, v["ui"].(map[string]any)["sms_uri"].(string))) {
		t.Error("the API's QR changed")
	}

	// A call: "Call this number", tel:, declined and free.
	_, page, _ = routedPage(t, h, rs, `{"number": "+14155550126"}`, androidUA, smsRoute, callRoute)
	ordered(t, page, `id="tap" data-channel="sms"`, `>Send SMS</a>`,
		`id="tap-call" data-channel="call" href="tel:+14155550100">Call this number</a>`,
		`Call +1 415-555-0100 from the phone you are verifying. The call is declined at once: that is expected, and it costs nothing.`)
	path, page, v = routedPage(t, h, rs, `{"number": "+14155550127"}`, androidUA, callRoute)
	ordered(t, page, `<p id="instruction">Call +1 415-555-0100 from the phone you are verifying.`, `<bdi>+1 415-555-0100</bdi>`, `href="tel:+14155550100">Call this number</a>`)
	if strings.Contains(page, `class="code"`) || strings.Contains(page, v["code"].(string)) {
		t.Errorf("a call-only page shows a code, which a call does not use:\n%s", page)
	}
	if w := h.do("GET", path+"/qr.png", "", nil, nil); !bytes.Equal(w.Body.Bytes(), qrOf(t, "tel:+14155550100")) {
		t.Error("the call-only page's QR is not the tel: link")
	}

	// Right to left: the Arabic words, numbers and code isolated.
	_, page, v = routedPage(t, h, rs, `{"number": "+14155550128", "language": "ar"}`, androidUA, waRoute, smsRoute)
	code = v["code"].(string)
	ordered(t, page, `dir="rtl"`, "لتطبيق \u2068Acme & Co\u2069", pageText["ar"]["choose"], ">"+pageText["ar"]["send_whatsapp"]+"<",
		"يرسل «\u2068Acme & Co code "+code+"\u2069» إلى \u2066+1 555-098-4277\u2069 عبر واتساب.", ">"+pageText["ar"]["send_sms"]+"<",
		"أرسل \u2066"+code+"\u2069 في رسالة نصية إلى \u2066+1 415-555-0100\u2069")
}

// TestPageCountdownAndHint: the page renders the time left and, once
// nothingYetAfter has passed since the create, the hint; before, the hint
// is there but hidden, for the script to show.
func TestPageCountdownAndHint(t *testing.T) {
	h, rs := acmeHarness(t)
	old := nothingYetAfter
	defer func() { nothingYetAfter = old }()

	nothingYetAfter = time.Hour
	_, page, _ := routedPage(t, h, rs, `{"number": "+14155550123", "ttl_seconds": 300}`, androidUA)
	m := regexp.MustCompile(`<p id="countdown" data-left-ms="(\d+)">Time left: <bdi id="left">(\d+:\d\d)</bdi></p>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no countdown:\n%s", page)
	}
	if ms, _ := strconv.Atoi(m[1]); ms <= 0 || ms > 300_000 || (m[2] != "5:00" && m[2] != "4:59") {
		t.Errorf("countdown %s ms, %q for a 300 s verification", m[1], m[2])
	}
	if !regexp.MustCompile(`<div id="nothing" data-after-ms="\d+" hidden>`).MatchString(page) {
		t.Errorf("the hint is not hidden before its time:\n%s", page)
	}
	nothingYetAfter = 0
	_, page, _ = routedPage(t, h, rs, `{"number": "+14155550124"}`, androidUA)
	if !strings.Contains(page, `<div id="nothing" data-after-ms="0">`) || !strings.Contains(page, "Nothing received yet. Messages sometimes never arrive.") {
		t.Errorf("the hint is not shown after its time:\n%s", page)
	}
	// A page without routes is the one SMS route: no "other way" to point to.
	if strings.Contains(page, "Try another way") || !strings.Contains(page, "Check that you are using the phone you are verifying, then try again.") {
		t.Errorf("a one-route hint points to other routes:\n%s", page)
	}
}

func TestClockText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0:00", 0: "0:00", 200 * time.Millisecond: "0:01", 59*time.Second + time.Millisecond: "1:00",
		61 * time.Second: "1:01", 10 * time.Minute: "10:00", time.Hour + time.Second: "1:00:01",
	} {
		if got := clockText(d); got != want {
			t.Errorf("clockText(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestPageCSP: only the response's nonce runs script or style; a new
// nonce per response.
func TestPageCSP(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	path := strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL)
	nonces := map[string]bool{}
	for range 2 {
		w := h.do("GET", path, "", nil, nil)
		csp := w.Header().Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{22})'`).FindStringSubmatch(csp)
		if m == nil || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "style-src 'nonce-"+m[1]+"'") {
			t.Fatalf("CSP = %q", csp)
		}
		body := w.Body.String()
		if strings.Count(body, "<script") != 1 || !strings.Contains(body, `<script nonce="`+m[1]+`">`) || !strings.Contains(body, `<style nonce="`+m[1]+`">`) {
			t.Fatalf("the page's script and style do not carry the CSP's nonce %s:\n%s", m[1], body)
		}
		nonces[m[1]] = true
	}
	if len(nonces) != 2 {
		t.Fatal("two responses had the same nonce")
	}
}

// TestPageTextComplete: every language of the page has every string, the
// formats take as many arguments as the page gives them, and the page's
// languages are the instructions' (ui.text).
func TestPageTextComplete(t *testing.T) {
	keys := slices.Sorted(maps.Keys(pageText["en"]))
	formats := map[string]int{"for_app": 1, "wa_how": 2, "call_how": 1}
	if langs, ui := slices.Sorted(maps.Keys(pageText)), slices.Sorted(maps.Keys(instructions)); !slices.Equal(langs, ui) {
		t.Fatalf("page languages %v, ui.text languages %v", langs, ui)
	}
	for lang, texts := range pageText {
		if got := slices.Sorted(maps.Keys(texts)); !slices.Equal(got, keys) {
			t.Errorf("%s has keys %v, want %v", lang, got, keys)
		}
		for k, s := range texts {
			if strings.TrimSpace(s) == "" {
				t.Errorf("%s %s is empty", lang, k)
			}
			args := make([]any, formats[k])
			for i := range args {
				args[i] = "X"
			}
			if strings.Count(s, "%s") != formats[k] || strings.Contains(fmt.Sprintf(s, args...), "%!") {
				t.Errorf("%s %s = %q: want %d %%s", lang, k, s, formats[k])
			}
			if lang != "en" && k != "send_sms" && s == pageText["en"][k] && !strings.Contains(s, "%s") {
				t.Errorf("%s %s is the English text", lang, k)
			}
		}
	}
}

// TestPageView: the page's stream says which channel verified a session
// that had several routes, and nothing more than before for one route.
func TestPageView(t *testing.T) {
	two := matcher.Session{Status: matcher.Verified, Routes: []matcher.Route{waRoute, smsRoute}, Via: waRoute}
	if got := fmt.Sprint(pageView(two)); got != "map[channel:whatsapp status:verified]" {
		t.Errorf("two routes, verified on WhatsApp: %s", got)
	}
	one := matcher.Session{Status: matcher.Verified, Routes: []matcher.Route{smsRoute}, Via: smsRoute, Redirect: "https://shop.example/done"}
	if got := fmt.Sprint(pageView(one)); got != "map[redirect_url:https://shop.example/done status:verified]" {
		t.Errorf("one route: %s", got)
	}
	two.Status = matcher.Pending
	if got := fmt.Sprint(pageView(two)); got != "map[status:pending]" {
		t.Errorf("pending: %s", got)
	}
}

// TestPageRoutesRedis: on store: redis, whose sessions keep their routes,
// the page of a session created with WhatsApp and SMS routes has both
// buttons, and once a WhatsApp message verifies it, says so (the page
// and its event stream).
func TestPageRoutesRedis(t *testing.T) {
	srv := redistest.Start(t)
	h := storeHarness(t, whatsappYAML+"store: redis\nredis_url: "+srv.URL()+"\n")
	const sender = "+14155550123"
	ctx := context.Background()
	sess, _, err := h.s.store.Create(ctx, matcher.CreateRequest{
		Key: "shop", API: "v1", Number: sender, To: metaNumber, TTL: 10 * time.Minute, Language: "de",
		Routes: []matcher.Route{waRoute, smsRoute},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := "/v/" + sess.PageToken
	page := html.UnescapeString(h.do("GET", path, "", nil, nil).Body.String())
	ordered(t, page, `<p id="app">Für shop</p>`, `href="https://wa.me/15550984277?text=shop%20code%20`+sess.Code+`">Mit WhatsApp senden</a>`,
		`href="sms:+14155550100?body=`+sess.Code+`">SMS senden</a>`)
	out, err := h.s.store.Ingest(ctx, matcher.Message{Provider: "meta", MessageID: "wamid.page1", From: sender, To: metaNumber, Text: "shop code " + sess.Code, Channel: matcher.ChannelWhatsApp}, matcher.IngestOptions{})
	if err != nil || out.Kind != matcher.Matched {
		t.Fatalf("ingest = %+v %v", out, err)
	}
	if page := h.do("GET", path, "", nil, nil).Body.String(); !strings.Contains(page, `data-status="verified">Mit WhatsApp bestätigt ✓</p>`) || strings.Contains(page, `class="tap"`) {
		t.Fatalf("verified page:\n%s", page)
	}
	events, _, closeStream := openStream(t, httptestServer(t, h)+path+"/events", "")
	defer closeStream()
	if e := next(t, events); e.data != `{"channel":"whatsapp","status":"verified"}` {
		t.Fatalf("page event = %s", e.data)
	}
}

// httptestServer serves h over HTTP for the test's length.
func httptestServer(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewServer(h.h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPageAppGone: a page whose API key a reload removed names no app
// (rather than "For " and nothing).
func TestPageAppGone(t *testing.T) {
	h := newHarness(t, testYAML)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	cfg, err := config.Parse([]byte(strings.Replace(testYAML, "  - {name: shop, key: "+shopKey+", webhook_secret: whsec_c2hvcC1TRUNSRVRWQUxVRS13aA==}\n", "", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	w := h.do("GET", strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL), "", nil, nil)
	if w.Code != 200 || strings.Contains(w.Body.String(), `id="app"`) || !strings.Contains(w.Body.String(), "<title>Verify your phone number</title>") {
		t.Fatalf("page of a removed key = %d\n%s", w.Code, w.Body)
	}
}
