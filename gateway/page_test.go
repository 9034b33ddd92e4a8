package gateway

import (
	"bufio"
	"bytes"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
)

// sseEvents reads a stream and sends each event's data line, with the time
// it arrived.
type sseEvent struct {
	data string
	at   time.Time
}

func openStream(t *testing.T, url, key string) (<-chan sseEvent, <-chan string, func()) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events, comments := make(chan sseEvent, 16), make(chan string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "data: "):
				events <- sseEvent{strings.TrimPrefix(line, "data: "), time.Now()}
			case strings.HasPrefix(line, ":"):
				select {
				case comments <- line:
				default:
				}
			}
		}
	}()
	return events, comments, func() { resp.Body.Close() }
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return sseEvent{}
}

func TestEventStreamReportsVerifiedFast(t *testing.T) {
	h := newHarness(t, testYAML)
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	v := h.mustCreate(`{"number": "+14155550123"}`)
	events, _, closeStream := openStream(t, srv.URL+"/v1/verifications/"+v["id"].(string)+"/events", shopKey)
	defer closeStream()
	if e := next(t, events); !strings.Contains(e.data, `"status":"pending"`) {
		t.Fatalf("first event = %s", e.data)
	}
	w := h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: "+14155550100", Text: v["code"].(string)}))
	acked := time.Now()
	if w.Code != 200 {
		t.Fatal(w.Code)
	}
	e := next(t, events)
	if !strings.Contains(e.data, `"status":"verified"`) || !strings.Contains(e.data, `"verified_number":"+14155550123"`) {
		t.Fatalf("event = %s", e.data)
	}
	// The match wakes the stream; no polling. The event is sent before the
	// webhook's 2xx is even written, so it arrives within 100 ms of it.
	if d := e.at.Sub(acked); d > 100*time.Millisecond {
		t.Fatalf("verified reported %v after the webhook's 2xx", d)
	}
	if _, ok := <-events; ok {
		t.Fatal("stream did not end at the final status")
	}
	// Another key's verification is not found.
	req, _ := http.NewRequest("GET", srv.URL+"/v1/verifications/"+v["id"].(string)+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+otherKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 404 {
		t.Fatalf("other key: %v %v", resp.StatusCode, err)
	}
}

func TestEventStreamHeartbeats(t *testing.T) {
	old := heartbeat
	heartbeat = 20 * time.Millisecond
	defer func() { heartbeat = old }()
	h := newHarness(t, testYAML)
	srv := httptest.NewServer(h.h)
	defer srv.Close()
	v := h.mustCreate(`{"number": "+14155550123"}`)
	_, comments, closeStream := openStream(t, srv.URL+"/v1/verifications/"+v["id"].(string)+"/events", shopKey)
	defer closeStream()
	select {
	case c := <-comments:
		if c != ": heartbeat" {
			t.Fatalf("comment = %q", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
}

func pageFor(t *testing.T, h *harness, body, ua string) (string, map[string]any) {
	t.Helper()
	v := h.mustCreate(body)
	pageURL := v["ui"].(map[string]any)["page_url"].(string)
	path := strings.TrimPrefix(pageURL, publicURL)
	w := h.do("GET", path, "", nil, http.Header{"User-Agent": {ua}})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("page = %d %s", w.Code, w.Body)
	}
	return html.UnescapeString(w.Body.String()), v
}

func TestHostedPage(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		android := "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile Safari/537.36"
		iphone := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1"
		page, v := pageFor(t, h, `{"number": "+14155550123", "language": "es", "redirect_url": "https://shop.example/done"}`, android)
		code := v["code"].(string)
		for _, want := range []string{`lang="es"`, `dir="ltr"`, "Envía " + code, "+1 415-555-0100", `href="sms:+14155550100?body=` + code + `"`, `/qr.png"`, "Esperando tu mensaje", `<noscript><meta http-equiv="refresh"`} {
			if !strings.Contains(page, want) {
				t.Errorf("Spanish page lacks %q", want)
			}
		}
		for _, secret := range append(secrets, v["id"].(string), "https://shop.example/done") {
			if strings.Contains(page, secret) {
				t.Errorf("page shows %q", secret)
			}
		}
		page, _ = pageFor(t, h, `{"number": "+14155550124"}`, iphone)
		if !strings.Contains(page, `href="sms:+14155550100&body=`) {
			t.Errorf("iPhone link does not use &body=: %s", page)
		}
		page, _ = pageFor(t, h, `{"number": "+14155550125", "language": "ar"}`, android)
		if !strings.Contains(page, `dir="rtl"`) || !strings.Contains(page, "في انتظار رسالتك") {
			t.Error("Arabic page is not right-to-left Arabic")
		}
		for _, lang := range []string{"fr", "de", "pt", "hi", "zh"} {
			page, _ = pageFor(t, h, `{"country": "FR", "language": "`+lang+`"}`, android)
			if !strings.Contains(page, pageText[lang]["waiting"]) || !strings.Contains(page, `lang="`+lang+`"`) {
				t.Errorf("%s page not translated", lang)
			}
		}
		// Verified: the page says so and sends the user on.
		_, v = pageFor(t, h, `{"number": "+14155550126", "redirect_url": "https://shop.example/done"}`, android)
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550126", To: "+14155550100", Text: v["code"].(string)}))
		w := h.do("GET", strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL), "", nil, nil)
		if !strings.Contains(w.Body.String(), "Verified ✓") || !strings.Contains(w.Body.String(), `content="1;url=https://shop.example/done"`) || strings.Contains(w.Body.String(), `class="tap"`) {
			t.Fatalf("verified page = %s", w.Body)
		}
		// Wrong tokens, and the verification id used as a token, are not found.
		for _, p := range []string{"/v/pt_aaaaaaaaaaaaaaaaaaaaaaaaaa", "/v/nope", "/v/" + v["id"].(string), "/v/nope/events", "/v/nope/qr.png"} {
			if w := h.do("GET", p, "", nil, nil); w.Code != 404 {
				t.Errorf("%s = %d", p, w.Code)
			}
		}
	})
}

// TestQRCode: the API's QR (ui.qr_png_url) holds the code and the id is
// logged, so it needs the owner's key: none is 401, another key's id is the
// 404 a GET of it answers. The hosted page's QR lives under the page token,
// which the page itself uses; it stops once the verification is final.
func TestQRCode(t *testing.T) {
	forEachStore(t, func(t *testing.T, st testStore) {
		h := st.harness(t, testYAML)
		v := h.mustCreate(`{"number": "+14155550123"}`)
		id := v["id"].(string)
		api := "/v1/verifications/" + id + "/qr.png"
		if got := v["ui"].(map[string]any)["qr_png_url"]; got != publicURL+api {
			t.Fatalf("qr_png_url = %v", got)
		}
		page := strings.TrimPrefix(v["ui"].(map[string]any)["page_url"].(string), publicURL)
		isPNG := func(w *httptest.ResponseRecorder) bool {
			return w.Code == 200 && w.Header().Get("Content-Type") == "image/png" && bytes.HasPrefix(w.Body.Bytes(), []byte("\x89PNG\r\n\x1a\n"))
		}
		if w := h.do("GET", api, shopKey, nil, nil); !isPNG(w) {
			t.Fatalf("owner's QR = %d %s", w.Code, w.Header().Get("Content-Type"))
		}
		if w := h.do("GET", api, "", nil, nil); w.Code != 401 || !strings.Contains(w.Body.String(), "missing_api_key") {
			t.Fatalf("QR without a key = %d %s", w.Code, w.Body)
		}
		if w := h.do("GET", api, "not-a-key-at-all-0000", nil, nil); w.Code != 401 {
			t.Fatalf("QR with a wrong key = %d", w.Code)
		}
		// Another key: exactly what a GET of another key's verification says.
		other := h.do("GET", api, otherKey, nil, nil)
		get := h.do("GET", "/v1/verifications/"+id, otherKey, nil, nil)
		if other.Code != 404 || get.Code != 404 || other.Body.String() != get.Body.String() {
			t.Fatalf("another key's QR = %d %s; its GET = %d %s", other.Code, other.Body, get.Code, get.Body)
		}
		if w := h.do("GET", "/v1/verifications/vrf_nope/qr.png", shopKey, nil, nil); w.Code != 404 {
			t.Fatalf("unknown id = %d", w.Code)
		}

		// The page: its QR under its token, no key; the page embeds that one.
		if w := h.do("GET", page+"/qr.png", "", nil, nil); !isPNG(w) {
			t.Fatalf("page QR = %d %s", w.Code, w.Header().Get("Content-Type"))
		}
		if w := h.do("GET", page, "", nil, nil); !strings.Contains(w.Body.String(), `src="`+page+`/qr.png"`) || strings.Contains(w.Body.String(), "/v1/") {
			t.Fatalf("the page does not embed its own QR: %s", w.Body)
		}
		for _, p := range []string{"/v/pt_aaaaaaaaaaaaaaaaaaaaaaaaaa/qr.png", "/v/" + id + "/qr.png"} {
			if w := h.do("GET", p, "", nil, nil); w.Code != 404 {
				t.Fatalf("%s = %d", p, w.Code)
			}
		}
		// Final: texting the code does nothing any more, so the page's QR is
		// gone (the page removes it too); the owner can still fetch the API's.
		h.send(h.signed("twilio", adapters.Inbound{From: "+14155550123", To: v["to"].(string), Text: v["code"].(string)}))
		if w := h.do("GET", page+"/qr.png", "", nil, nil); w.Code != 404 || !strings.Contains(w.Body.String(), "not_found") {
			t.Fatalf("page QR of a verified session = %d %s", w.Code, w.Body)
		}
		if w := h.do("GET", api, shopKey, nil, nil); !isPNG(w) {
			t.Fatalf("owner's QR of a verified session = %d", w.Code)
		}
	})
}
