package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
)

// browserServer serves whatsappYAML (the shop key's app_name "Acme & Co")
// on a real listener, with routes from a routedStore, for Chromium.
func browserServer(t *testing.T) (*harness, *routedStore, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg, err := config.Parse([]byte(strings.Replace(whatsappYAML, "public_url: "+publicURL, "public_url: "+base, 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.APIKeys[0].AppName = "Acme & Co"
	s, _, err := open(Options{Config: cfg}, true)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, h: s.Handler(), logs: &syncBuffer{}, now: time.Now()}
	rs := withRoutes(h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, rs, base
}

// newBrowser starts headless Chromium in a fresh profile (removed once it
// has exited: t.TempDir would fail on files it writes while shutting down)
// and returns its tab's context, closed when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromium(t)
	profile, err := os.MkdirTemp("", "mogate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() {
		_ = chromedp.Cancel(tctx) // closes the browser and waits for it
		tcancel()
		bcancel()
		acancel()
		_ = os.RemoveAll(profile)
	})
	return tctx
}

// TestPageRoutesInBrowser drives the routes of the hosted page in headless
// Chromium: the buttons and their links, the countdown, the "nothing yet"
// hint pointing to the route not tapped, the verified channel over the
// event stream, the QR of a WhatsApp-only page, and a call route.
func TestPageRoutesInBrowser(t *testing.T) {
	h, rs, base := browserServer(t)
	bctx := newBrowser(t)
	old := nothingYetAfter
	defer func() { nothingYetAfter = old }()
	// Short, for the script to show the hint while the test waits for it
	// (polling the page, never timing it).
	nothingYetAfter = 1500 * time.Millisecond

	create := func(body string, routes ...matcher.Route) (string, string, string) {
		v := h.mustCreate(body)
		rs.set(v["id"].(string), routes...)
		return v["id"].(string), v["ui"].(map[string]any)["page_url"].(string), v["code"].(string)
	}

	t.Run("WhatsApp and SMS", func(t *testing.T) {
		const sender = "+14155550123"
		made := time.Now()
		id, pageURL, code := create(`{"number": "`+sender+`"}`, waRoute, smsRoute)
		var order, waHref, smsHref, app, left0 string
		if err := chromedp.Run(bctx,
			chromedp.Navigate(pageURL),
			chromedp.WaitVisible("#tap-whatsapp", chromedp.ByID),
			chromedp.Evaluate(`Array.from(document.querySelectorAll('#routes .tap')).map(function(a){return a.id+':'+a.textContent}).join(',')`, &order),
			chromedp.AttributeValue("#tap-whatsapp", "href", &waHref, nil, chromedp.ByID),
			chromedp.AttributeValue("#tap", "href", &smsHref, nil, chromedp.ByID),
			chromedp.Text("#app", &app, chromedp.ByID),
			chromedp.Text("#left", &left0, chromedp.ByID),
		); err != nil {
			t.Fatal(err)
		}
		if order != "tap-whatsapp:Send with WhatsApp,tap:Send SMS" {
			t.Errorf("buttons = %q", order)
		}
		if want := "https://wa.me/15550984277?text=Acme%20%26%20Co%20code%20" + code; waHref != want {
			t.Errorf("WhatsApp href = %q, want %q", waHref, want)
		}
		if want := "sms:+14155550100?body=" + code; smsHref != want {
			t.Errorf("SMS href = %q, want %q", smsHref, want)
		}
		// The countdown starts from the session's 10 minutes, less the time
		// the page took to come (seconds on a loaded machine).
		var mins, secs int
		_, scanErr := fmt.Sscanf(left0, "%d:%02d", &mins, &secs)
		left := time.Duration(mins)*time.Minute + time.Duration(secs)*time.Second
		if floor := 10*time.Minute - time.Since(made).Truncate(time.Second) - 2*time.Second; app != "For Acme & Co" || scanErr != nil || left > 10*time.Minute || left < floor {
			t.Errorf("app %q, time left %q (want 10:00 less the %v since the create)", app, left0, time.Since(made).Round(time.Second))
		}
		// The user taps WhatsApp (the test keeps the browser from leaving);
		// the countdown runs; the hint comes and points to SMS only.
		var waAlt, smsAlt bool
		if err := chromedp.Run(bctx,
			chromedp.Evaluate(`document.addEventListener('click',function(e){e.preventDefault();},true); document.getElementById('tap-whatsapp').click(); true`, nil),
			chromedp.Poll(`document.getElementById('left').textContent !== `+jsString(left0), nil),
			chromedp.WaitVisible("#nothing", chromedp.ByID),
			chromedp.Evaluate(`!document.querySelector('#nothing .alt[data-channel=whatsapp]').hidden`, &waAlt),
			chromedp.Evaluate(`!document.querySelector('#nothing .alt[data-channel=sms]').hidden`, &smsAlt),
		); err != nil {
			t.Fatal(err)
		}
		if waAlt || !smsAlt {
			t.Errorf("after tapping WhatsApp the hint shows WhatsApp %v, SMS %v", waAlt, smsAlt)
		}
		if p := os.Getenv("MOGATE_SCREENSHOT_ROUTES"); p != "" {
			var shot []byte
			if err := chromedp.Run(bctx, chromedp.FullScreenshot(&shot, 100)); err == nil {
				_ = os.WriteFile(p, shot, 0o600)
			}
		}
		// The SMS arrives: the page says it was the SMS, and the routes go.
		rs.mu.Lock()
		rs.via[id] = smsRoute
		rs.mu.Unlock()
		u, _ := url.Parse(base + "/webhooks/twilio")
		r, err := h.s.adapters["twilio"].(adapters.Signer).Sign(adapters.Inbound{From: sender, To: smsRoute.To, Text: code}, u, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if w := h.send(r); w.Code != 200 {
			t.Fatalf("webhook = %d", w.Code)
		}
		var text string
		var gone bool
		if err := chromedp.Run(bctx,
			chromedp.WaitVisible(`#status[data-status="verified"]`, chromedp.ByQuery),
			chromedp.Text("#status", &text, chromedp.ByID),
			chromedp.Evaluate(`['routes','countdown','nothing','qr'].every(function(id){return !document.getElementById(id);})`, &gone),
		); err != nil {
			t.Fatal(err)
		}
		if text != "Verified by SMS ✓" || !gone {
			t.Errorf("verified: status %q, routes gone %v", text, gone)
		}
	})

	t.Run("WhatsApp only on a desktop", func(t *testing.T) {
		_, pageURL, code := create(`{"number": "+14155550124"}`, waRoute)
		var src string
		var width int
		var noSMS bool
		if err := chromedp.Run(bctx,
			chromedp.Navigate(pageURL),
			chromedp.WaitVisible("#qr", chromedp.ByID),
			chromedp.Poll(`document.getElementById('qr').complete && document.getElementById('qr').naturalWidth`, &width),
			chromedp.Evaluate(`document.getElementById('qr').src`, &src),
			chromedp.Evaluate(`document.getElementById('tap') === null && document.getElementById('tap-whatsapp') !== null`, &noSMS),
		); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(src)
		if err != nil {
			t.Fatal(err)
		}
		png, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := qrOf(t, "https://wa.me/15550984277?text=Acme%20%26%20Co%20code%20"+code); width < 100 || !bytes.Equal(png, want) || !noSMS {
			t.Errorf("QR width %d, the wa.me link's QR %v, no SMS button %v", width, bytes.Equal(png, want), noSMS)
		}
	})

	t.Run("call", func(t *testing.T) {
		_, pageURL, _ := create(`{"number": "+14155550125"}`, smsRoute, callRoute)
		var label, href, how string
		if err := chromedp.Run(bctx,
			chromedp.Navigate(pageURL),
			chromedp.WaitVisible("#tap-call", chromedp.ByID),
			chromedp.Text("#tap-call", &label, chromedp.ByID),
			chromedp.AttributeValue("#tap-call", "href", &href, nil, chromedp.ByID),
			chromedp.Text("#tap-call + .how", &how, chromedp.ByQuery),
		); err != nil {
			t.Fatal(err)
		}
		if label != "Call this number" || href != "tel:+14155550100" || !strings.Contains(how, "declined") || !strings.Contains(how, "costs nothing") {
			t.Errorf("call route: %q %q %q", label, href, how)
		}
	})
}

// jsString quotes s for a script.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
