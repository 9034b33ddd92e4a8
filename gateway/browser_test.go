package gateway

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// chromium returns Debian's Chromium; without it the test skips, except in
// CI, where .ci/run installs it and its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set but chromium is not installed (.ci/run installs Debian's chromium)")
	}
	t.Skip("chromium not installed")
	return ""
}

// TestPageInBrowser loads the hosted page in headless Chromium, sees the QR
// code and the instructions, simulates the SMS and watches the page turn to
// verified without a reload.
func TestPageInBrowser(t *testing.T) {
	chromium(t) // skips (or fails under CI) before any server starts
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	y := strings.Replace(testYAML, "public_url: "+publicURL, "public_url: "+base, 1)
	cfg, err := config.Parse([]byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := open(Options{Config: cfg}, true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	defer func() { cancel(); <-done }()

	h := &harness{t: t, s: s, h: s.Handler(), logs: &syncBuffer{}, now: time.Now()}
	v := h.mustCreate(`{"number": "+14155550123", "language": "fr"}`)
	pageURL := v["ui"].(map[string]any)["page_url"].(string)
	code := v["code"].(string)

	bctx := newBrowser(t)

	var instruction string
	var qrWidth int
	var status string
	if err := chromedp.Run(bctx,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible("#qr", chromedp.ByID),
		chromedp.Poll(`document.getElementById('qr').complete && document.getElementById('qr').naturalWidth`, &qrWidth),
		chromedp.Text("#instruction", &instruction, chromedp.ByID),
		chromedp.AttributeValue("#status", "data-status", &status, nil, chromedp.ByID),
		// A marker that a reload would wipe.
		chromedp.Evaluate(`window.__mogateMarker = 42`, nil),
	); err != nil {
		t.Fatal(err)
	}
	if qrWidth < 100 || !strings.Contains(instruction, "Envoyez "+code) || status != "pending" {
		t.Fatalf("page: qr width %d, instruction %q, status %q", qrWidth, instruction, status)
	}

	if p := os.Getenv("MOGATE_SCREENSHOT_PENDING"); p != "" {
		var shot []byte
		if err := chromedp.Run(bctx, chromedp.FullScreenshot(&shot, 100)); err == nil {
			_ = os.WriteFile(p, shot, 0o600)
		}
	}

	// The user's phone texts the code.
	u, _ := url.Parse(base + "/webhooks/twilio")
	r, err := s.adapters["twilio"].(adapters.Signer).Sign(adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: code}, u, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if w := h.send(r); w.Code != 200 {
		t.Fatalf("webhook = %d", w.Code)
	}

	var text string
	var marker int
	if err := chromedp.Run(bctx,
		chromedp.WaitVisible(`#status[data-status="verified"]`, chromedp.ByQuery),
		chromedp.Text("#status", &text, chromedp.ByID),
		chromedp.Evaluate(`window.__mogateMarker || 0`, &marker),
	); err != nil {
		t.Fatal(err)
	}
	if text != pageText["fr"]["verified"] || marker != 42 {
		t.Fatalf("after the SMS: status text %q, marker %d (0 means the page reloaded)", text, marker)
	}
	// MOGATE_SCREENSHOT=/path.png keeps a picture of the verified page.
	if p := os.Getenv("MOGATE_SCREENSHOT"); p != "" {
		var shot []byte
		if err := chromedp.Run(bctx, chromedp.FullScreenshot(&shot, 100)); err == nil {
			_ = os.WriteFile(p, shot, 0o600)
		}
	}
}
