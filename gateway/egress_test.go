package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// countingServer is an httptest server that counts the connections it
// accepts, so that an attempt refused before connecting is told from one
// that connected and failed later (in a TLS handshake, say).
func countingServer(t *testing.T, useTLS bool, h http.Handler) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, &conns
}

// TestEventEgressRules: events go to public addresses over https only; the
// address is checked when connecting, after name resolution, and the scheme
// when delivering, whatever the callback_url was stored with.
func TestEventEgressRules(t *testing.T) {
	cases := []struct {
		name         string
		allowPrivate bool
		tls          bool
		callback     string           // %s: the receiver's port
		want         matcher.Notified // NotNotified: refused before connecting, retried
		log          string
	}{
		{"name resolving to loopback", false, true, "https://localhost:%s/cb", matcher.NotNotified, "not a public address"},
		{"loopback address", false, true, "https://127.0.0.1:%s/cb", matcher.NotNotified, "not a public address"},
		{"IPv4-mapped loopback", false, true, "https://[::ffff:127.0.0.1]:%s/cb", matcher.NotNotified, "not a public address"},
		{"http stored before the rules", false, false, "http://localhost:%s/cb", matcher.Dead, "destination not allowed"},
		{"allow_private_destinations", true, false, "http://localhost:%s/cb", matcher.Delivered, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := countingServer(t, tc.tls, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			y := testYAML
			if tc.allowPrivate {
				y += allowPrivate
			}
			h, _ := startOutbox(t, y, OutboxOptions{BaseDelay: 10 * time.Millisecond})
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			callback := strings.Replace(tc.callback, "%s", port, 1)
			var id string
			if strings.HasPrefix(callback, "http:") && !tc.allowPrivate {
				// The API refuses it now (422): a session stored before.
				s, _, err := h.m.Create(context.Background(), matcher.CreateRequest{Key: "shop", Number: "+14155550123", To: "+14155550100", TTL: time.Minute, Callback: callback})
				if err != nil {
					t.Fatal(err)
				}
				id = s.ID
			} else {
				id = h.mustCreate(`{"number": "+14155550123", "callback_url": "` + callback + `"}`)["id"].(string)
			}
			v := map[string]any{"id": id}
			h.do("POST", "/v1/verifications/"+id+"/cancel", shopKey, nil, nil)
			switch tc.want {
			case matcher.NotNotified:
				eventually(t, "two refused attempts", func() bool { return strings.Count(h.logs.String(), tc.log) >= 2 })
			default:
				eventually(t, "the outcome", func() bool { s, _ := h.m.Get(context.Background(), v["id"].(string)); return s.Notified == tc.want })
				if !strings.Contains(h.logs.String(), tc.log) {
					t.Errorf("logs do not say %q: %s", tc.log, h.logs)
				}
			}
			if s, _ := h.m.Get(context.Background(), v["id"].(string)); s.Notified != tc.want {
				t.Errorf("notified = %d, want %d", s.Notified, tc.want)
			}
			if n := conns.Load(); (n > 0) != (tc.want == matcher.Delivered) {
				t.Errorf("%d connections reached the receiver", n)
			}
		})
	}
}

// TestRedirectNotFollowed: a 3xx is a failed attempt; its Location is never
// visited (a 307 would repeat the POST there).
func TestRedirectNotFollowed(t *testing.T) {
	second := newReceiver(t)
	var calls atomic.Int32
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, second.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(first.Close)
	h, _ := outboxHarness(t, first.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond})
	v := h.mustCreate(`{"number": "+14155550123"}`)
	h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil)
	eventually(t, "a retry after the redirect", func() bool { return calls.Load() >= 2 })
	if second.calls() != 0 {
		t.Fatalf("the redirect was followed: %d calls", second.calls())
	}
	if s, _ := h.m.Get(context.Background(), v["id"].(string)); s.Notified != 0 {
		t.Fatalf("notified = %d after a redirect", s.Notified)
	}
	if !strings.Contains(h.logs.String(), "receiver answered 307") {
		t.Fatalf("the failed attempt is not logged: %s", h.logs)
	}
}
