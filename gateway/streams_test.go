package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// serveHTTP serves h on a loopback listener: streams need a real client
// that can go away.
func serveHTTP(t *testing.T, h *harness) string {
	t.Helper()
	srv := httptest.NewServer(h.h)
	t.Cleanup(srv.Close) // runs after the streams' own cleanups
	return srv.URL
}

// holdOpen starts a GET that stays open and returns its status once the
// headers arrive; disconnect ends it from the client's side.
func holdOpen(t *testing.T, u, key string) (status int, disconnect func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	disconnect = func() { cancel(); resp.Body.Close() }
	t.Cleanup(disconnect)
	if resp.StatusCode != 200 {
		disconnect()
	}
	return resp.StatusCode, disconnect
}

// mustRefuse checks a 429 with Retry-After and the JSON error.
func mustRefuse(t *testing.T, u, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel() // an accepted stream never ends on its own
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 429 {
		t.Fatalf("%s = %d, want 429", u, resp.StatusCode)
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &body)
	if resp.Header.Get("Retry-After") == "" || body.Error.Code != "too_many_streams" {
		t.Fatalf("%s = 429 %v %s, want too_many_streams with Retry-After", u, resp.Header, b)
	}
}

func pagePath(t *testing.T, v map[string]any) string {
	t.Helper()
	u, err := url.Parse(v["ui"].(map[string]any)["page_url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

// TestStreamsPerKey: with limits.streams_per_key 2, an SSE stream and a
// long-poll fill the key's budget; a third stream or long-poll of that key
// is 429 (a hosted-page stream of its sessions is not: it has its own cap),
// another key is not affected, and a slot frees when a client disconnects
// or a long-poll ends.
func TestStreamsPerKey(t *testing.T) {
	y := strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n", "unmatched_per_sender_per_hour: 5\n  streams_per_key: 2\n", 1)
	h := newHarness(t, y)
	base := serveHTTP(t, h)
	a := h.mustCreate(`{"number": "+14155550123"}`)
	b := h.mustCreate(`{"number": "+14155550124"}`)
	c := h.mustCreate(`{"number": "+14155550125"}`)
	events := func(v map[string]any) string { return base + "/v1/verifications/" + v["id"].(string) + "/events" }
	held := func() int { return h.s.streams.perKey.(*slots).held("shop") }

	code, disconnectFirst := holdOpen(t, events(a), shopKey)
	if code != 200 {
		t.Fatalf("first stream = %d", code)
	}
	longPoll := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/verifications/"+b["id"].(string)+"?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+shopKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			longPoll <- 0
			return
		}
		resp.Body.Close()
		longPoll <- resp.StatusCode
	}()
	eventually(t, "the long-poll to hold a slot", func() bool { return held() == 2 })

	// At the limit: one more of any kind is refused.
	mustRefuse(t, events(c), shopKey)
	mustRefuse(t, base+"/v1/verifications/"+c["id"].(string)+"?wait=5s", shopKey)
	if code, _ := holdOpen(t, base+pagePath(t, c)+"/events", ""); code != 200 {
		t.Fatalf("page stream with the key's budget spent = %d", code)
	}
	if held() != 2 {
		t.Fatalf("refused requests hold %d slots", held()-2)
	}
	// A plain GET holds nothing; another key has its own budget.
	h.get(c["id"].(string))
	_, o := h.create(otherKey, `{"number": "+14155550126"}`, nil)
	if code, _ := holdOpen(t, events(o), otherKey); code != 200 {
		t.Fatalf("other key's stream = %d", code)
	}

	// The client of the first stream goes away: its slot frees.
	disconnectFirst()
	eventually(t, "the disconnected stream's slot", func() bool { return held() == 1 })
	code, disconnect := holdOpen(t, events(c), shopKey)
	if code != 200 {
		t.Fatalf("stream after a disconnect = %d", code)
	}
	mustRefuse(t, events(a), shopKey)

	// The long-poll ends (its session is cancelled): its slot frees.
	h.do("POST", "/v1/verifications/"+b["id"].(string)+"/cancel", shopKey, nil, nil)
	if code := <-longPoll; code != 200 {
		t.Fatalf("long-poll = %d", code)
	}
	eventually(t, "the long-poll's slot", func() bool { return held() == 1 })
	if code, _ := holdOpen(t, events(a), shopKey); code != 200 {
		t.Fatalf("stream after the long-poll ended = %d", code)
	}
	disconnect()
	eventually(t, "every slot but one", func() bool { return held() == 1 })
}

// TestPageStreamsPerSession: a hosted page takes at most
// limits.page_streams_per_session streams (default 4), never counted
// against its key's streams_per_key: pages of many sessions, each at its
// cap, leave the key's own ?wait= and SSE alone. Another page is not
// affected; a disconnect frees a page slot; a verified page's streams end
// and free theirs.
func TestPageStreamsPerSession(t *testing.T) {
	h := newHarness(t, strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n", "unmatched_per_sender_per_hour: 5\n  streams_per_key: 2\n", 1))
	base := serveHTTP(t, h)
	var sessions []map[string]any
	for i := range 3 {
		sessions = append(sessions, h.mustCreate(fmt.Sprintf(`{"number": "+1415555013%d"}`, i)))
	}
	v := sessions[0]
	page := base + pagePath(t, v) + "/events"
	var first func()
	for _, s := range sessions {
		for i := range 4 {
			code, d := holdOpen(t, base+pagePath(t, s)+"/events", "")
			if code != 200 {
				t.Fatalf("page stream %d of %s = %d", i+1, s["id"], code)
			}
			if first == nil {
				first = d
			}
		}
	}
	mustRefuse(t, page, "")
	// Twelve page streams of the key's sessions: the key's own two
	// streams are still there, and only then is it at its cap.
	if code, _ := holdOpen(t, base+"/v1/verifications/"+v["id"].(string)+"/events", shopKey); code != 200 {
		t.Fatalf("the key's SSE = %d with its pages full", code)
	}
	waited := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", base+"/v1/verifications/"+sessions[1]["id"].(string)+"?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+shopKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			waited <- 0
			return
		}
		resp.Body.Close()
		waited <- resp.StatusCode
	}()
	eventually(t, "the long-poll to hold a slot", func() bool { return h.s.streams.perKey.(*slots).held("shop") == 2 })
	mustRefuse(t, base+"/v1/verifications/"+sessions[2]["id"].(string)+"/events", shopKey)

	first()
	perPage := h.s.streams.perPage.(*slots)
	eventually(t, "the page slot to free", func() bool { return perPage.held(v["id"].(string)) == 3 })
	if code, _ := holdOpen(t, page, ""); code != 200 {
		t.Fatalf("page stream after a disconnect = %d", code)
	}
	// Verified: the page's streams end on their own and give their slots back.
	h.send(h.signed("twilio", adapters.Inbound{From: "+14155550130", To: "+14155550100", Text: v["code"].(string)}))
	eventually(t, "the verified page's slots", func() bool { return perPage.held(v["id"].(string)) == 0 })
	h.do("POST", "/v1/verifications/"+sessions[1]["id"].(string)+"/cancel", shopKey, nil, nil)
	if code := <-waited; code != 200 {
		t.Fatalf("long-poll = %d", code)
	}
}

// TestPageStreamsUnlimited: page_streams_per_session 0 is no cap.
func TestPageStreamsUnlimited(t *testing.T) {
	h := newHarness(t, strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n", "unmatched_per_sender_per_hour: 5\n  page_streams_per_session: 0\n", 1))
	base := serveHTTP(t, h)
	page := base + pagePath(t, h.mustCreate(`{"number": "+14155550123"}`)) + "/events"
	for i := range 8 {
		if code, _ := holdOpen(t, page, ""); code != 200 {
			t.Fatalf("page stream %d = %d", i+1, code)
		}
	}
}

func TestSlots(t *testing.T) {
	ctx := context.Background()
	unlimited := newSlots(0)
	for range 10000 {
		if _, err := unlimited.take(ctx, "k"); err != nil {
			t.Fatalf("streams_per_key 0 refused a stream: %v", err)
		}
	}
	l := newSlots(2)
	r1, err1 := l.take(ctx, "k")
	_, err2 := l.take(ctx, "k")
	_, err3 := l.take(ctx, "k")
	if err1 != nil || err2 != nil || !errors.Is(err3, errNoSlot) {
		t.Fatalf("takes = %v %v %v, want nil nil errNoSlot", err1, err2, err3)
	}
	if _, err := l.take(ctx, "other"); err != nil {
		t.Fatal("a key's limit refused another key")
	}
	r1()
	r1() // a second release gives nothing back
	if l.held("k") != 1 {
		t.Fatalf("held = %d after one release", l.held("k"))
	}
	if _, err := l.take(ctx, "k"); err != nil {
		t.Fatal("a released slot was not reusable")
	}
}

// TestReloadStreamCaps: SIGHUP applies both stream caps; streams already
// open keep their slots.
func TestReloadStreamCaps(t *testing.T) {
	h := newHarness(t, testYAML)
	base := serveHTTP(t, h)
	v := h.mustCreate(`{"number": "+14155550123"}`)
	page := base + pagePath(t, v) + "/events"
	if code, _ := holdOpen(t, page, ""); code != 200 {
		t.Fatalf("page stream = %d", code)
	}
	cfg, err := config.Parse([]byte(strings.Replace(testYAML, "unmatched_per_sender_per_hour: 5\n",
		"unmatched_per_sender_per_hour: 5\n  streams_per_key: 1\n  page_streams_per_session: 1\n", 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if err := h.s.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, page, "")
	events := base + "/v1/verifications/" + v["id"].(string) + "/events"
	if code, _ := holdOpen(t, events, shopKey); code != 200 {
		t.Fatalf("the key's first stream = %d", code)
	}
	mustRefuse(t, events, shopKey)
}
