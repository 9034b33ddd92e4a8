package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/sony/gobreaker/v2"
)

// TestOneDestinationDoesNotDelayAnother: key shop's endpoints hang or fail
// with many events queued for them; key other's event still arrives at
// once, on another host or on the same one (breakers are per API key and
// host), and however many hosts shop spreads its events over.
func TestOneDestinationDoesNotDelayAnother(t *testing.T) {
	cases := []struct {
		name     string
		hosts    int  // shop's callback_urls go to this many hosts in turn
		sameHost bool // other's webhook_url is on shop's (first) host
		hang     bool // else shop's endpoint answers 500 until its breaker opens
		workers  int
		maxShop  int32 // shop's attempts in flight at most
	}{
		{"hanging endpoint, other host", 1, false, true, 0, 4},    // PerDestination
		{"hanging endpoint, same host", 1, true, true, 0, 4},      // PerDestination
		{"open breaker, same host", 1, true, false, 0, 4},         // PerDestination
		{"hanging endpoints on many hosts", 4, false, true, 4, 2}, // half of Workers
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var inShop, maxShop atomic.Int32
			otherGot := make(chan []byte, 1)
			mux := http.NewServeMux()
			mux.HandleFunc("/shop", func(w http.ResponseWriter, r *http.Request) {
				n := inShop.Add(1)
				defer inShop.Add(-1)
				for {
					if m := maxShop.Load(); n <= m || maxShop.CompareAndSwap(m, n) {
						break
					}
				}
				if !tc.hang {
					w.WriteHeader(http.StatusInternalServerError)
					return
				}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			})
			mux.HandleFunc("/other", func(_ http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				otherGot <- b
			})
			var shopSrv []*httptest.Server
			for range tc.hosts {
				srv := httptest.NewServer(mux)
				t.Cleanup(srv.Close)
				shopSrv = append(shopSrv, srv)
			}
			otherSrv := shopSrv[0]
			if !tc.sameHost {
				otherSrv = httptest.NewServer(mux)
				t.Cleanup(otherSrv.Close)
			}
			t.Cleanup(func() { close(release) })
			y := strings.Replace(testYAML, "{name: other, key: "+otherKey+"}",
				"{name: other, key: "+otherKey+", webhook_secret: "+whsec+", webhook_url: "+otherSrv.URL+"/other}", 1)
			h, _ := startOutbox(t, y+allowPrivate, OutboxOptions{BaseDelay: 10 * time.Millisecond, Workers: tc.workers})

			for i := range 20 {
				v := h.mustCreate(`{"number": "+141555502` + strconv.Itoa(10+i) + `", "callback_url": "` + shopSrv[i%tc.hosts].URL + `/shop"}`)
				h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil)
			}
			if tc.hang {
				eventually(t, "shop's endpoints to hold attempts", func() bool { return inShop.Load() >= tc.maxShop })
			} else {
				u, _ := url.Parse(shopSrv[0].URL)
				eventually(t, "shop's breaker to open", func() bool { return breakerState(h, "shop", u.Host) == gobreaker.StateOpen })
			}
			code, v := h.create(otherKey, `{"number": "+14155550299"}`, nil)
			if code != 201 {
				t.Fatalf("create = %d %v", code, v)
			}
			h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", otherKey, nil, nil)
			select {
			case b := <-otherGot:
				if !strings.Contains(string(b), v["id"].(string)) {
					t.Fatalf("other's event = %s", b)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("other's event was held up by shop's endpoints")
			}
			if n := maxShop.Load(); n > tc.maxShop {
				t.Errorf("shop had %d attempts in flight, want at most %d", n, tc.maxShop)
			}
		})
	}
}

// breakerState is the state of the breaker of key's destination host.
func breakerState(h *harness, key, host string) gobreaker.State {
	return h.s.outbox.BreakerState(key, host)
}

// TestAttemptTimeout: OutboxOptions.Timeout ends an attempt to a receiver
// that does not answer, or that starts answering and never finishes; such
// an attempt failed, and the event is sent again.
func TestAttemptTimeout(t *testing.T) {
	cases := []struct {
		name       string
		stallFirst func(http.ResponseWriter)
	}{
		{"no answer", func(http.ResponseWriter) {}},
		{"answer never finishes", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body)
				if calls.Add(1) > 1 {
					return
				}
				tc.stallFirst(w)
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			h, _ := outboxHarness(t, srv.URL, OutboxOptions{BaseDelay: 10 * time.Millisecond, Timeout: 300 * time.Millisecond})
			v := h.mustCreate(`{"number": "+14155550123"}`)
			h.do("POST", "/v1/verifications/"+v["id"].(string)+"/cancel", shopKey, nil, nil)
			// Well under the default Timeout (10 s): the option is what ends the attempt.
			eventuallyWithin(t, 5*time.Second, "delivery", func() bool {
				s, _ := h.s.m.Get(context.Background(), v["id"].(string))
				return s.Notified == matcher.Delivered
			})
			if n := calls.Load(); n != 2 {
				t.Fatalf("delivered after %d calls, want 2: the stalled attempt must fail", n)
			}
			if !strings.Contains(h.logs.String(), "deadline exceeded") {
				t.Errorf("the stalled attempt is not logged as timed out: %s", h.logs)
			}
		})
	}
}
