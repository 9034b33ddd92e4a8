package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/config"
)

// closedWithin reports whether the server closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c) // returns at EOF or at the deadline
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

// TestAdminListenerTimeouts: the admin listener closes a connection that
// sends nothing, one that stops in the middle of a header, one that stops
// in the middle of its body and one left idle after a request.
func TestAdminListenerTimeouts(t *testing.T) {
	saved := adminTimeouts
	t.Cleanup(func() { adminTimeouts = saved })
	adminTimeouts = timeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond, write: time.Second, idle: 300 * time.Millisecond}

	h := newHarness(t, testYAML+"admin_listen: 127.0.0.1:9099\n")
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	stop := h.s.ServeAdmin(ln)
	t.Cleanup(func() { _ = stop() })

	cases := []struct {
		name string
		send func(net.Conn) error
	}{
		{"nothing", func(net.Conn) error { return nil }},
		{"half a header", func(c net.Conn) error {
			_, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			return err
		}},
		{"half a body", func(c net.Conn) error {
			_, err := io.WriteString(c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
			return err
		}},
		{"idle after a request", func(c net.Conn) error {
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return errors.New(resp.Status)
			}
			return nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := tc.send(c); err != nil {
				t.Fatal(err)
			}
			if !closedWithin(c, 5*time.Second) {
				t.Fatal("the admin listener kept the connection open")
			}
		})
	}
}

// TestMaxConnectionsAdmitsWebhook: with the public listener at its cap,
// held by connections that send nothing, half a request or sit idle
// between requests, a provider's webhook on a new connection is answered,
// and the connections closed for it are the oldest ones.
func TestMaxConnectionsAdmitsWebhook(t *testing.T) {
	const max = 20
	h, addr := serveCapped(t, max)
	waitOpen := func(n int) { waitConns(t, h, "open", n) }

	held := make([]net.Conn, max)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		switch i % 3 {
		case 1: // half a request
			_, err = io.WriteString(c, "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Length: 10")
		case 2: // one request, then idle
			_, err = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			if err == nil {
				var resp *http.Response
				if resp, err = http.ReadResponse(bufio.NewReader(c), nil); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		waitOpen(i + 1) // accepted in the order dialled
		held[i] = c
	}

	// Each new connection at the cap closes the oldest held one.
	for k := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if !closedWithin(held[k], 5*time.Second) {
			t.Fatalf("new connection %d: held connection %d (the oldest) is still open", k, k)
		}
		waitOpen(max)
		if closedWithin(held[k+1], 20*time.Millisecond) {
			t.Fatalf("new connection %d closed held connection %d too", k, k+1)
		}
	}

	sendWebhook(t, h, addr, "+14155550123")
	if !closedWithin(held[3], 5*time.Second) {
		t.Fatal("the webhook's connection did not close the oldest held one")
	}
	for i, c := range held[4:] {
		if closedWithin(c, 20*time.Millisecond) {
			t.Fatalf("held connection %d closed; only the oldest four should be", i+4)
		}
	}
	if w := h.do("GET", "/metrics", "", nil, nil); !strings.Contains(w.Body.String(), `mogate_connections_shed_total{reason="evicted"} 4`) {
		t.Errorf("metrics lack four evictions:\n%s", grepLines(w.Body.String(), "mogate_connections"))
	}
}

// TestMaxConnectionsEvictsTricklers: with the public listener at its cap,
// held by connections that sent a webhook's header and trickle its body
// (each request in progress, its handler waiting for the rest), a
// provider's webhook on a new connection is answered promptly, and the
// connection closed for it is the oldest trickler.
func TestMaxConnectionsEvictsTricklers(t *testing.T) {
	const max = 5
	h, addr := serveCapped(t, max)
	held := make([]net.Conn, max)
	for i := range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, "POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\n"+
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nFrom=%2B141"); err != nil {
			t.Fatal(err)
		}
		waitConns(t, h, "active", i+1) // accepted in the order dialled, each request in progress
		held[i] = c
	}

	sendWebhook(t, h, addr, "+14155550124")
	if !closedWithin(held[0], 5*time.Second) {
		t.Fatal("the webhook's connection did not close the oldest trickler")
	}
	for i, c := range held[1:] {
		if closedWithin(c, 20*time.Millisecond) {
			t.Fatalf("trickler %d closed; only the oldest should be", i+1)
		}
	}
	if w := h.do("GET", "/metrics", "", nil, nil); !strings.Contains(w.Body.String(), `mogate_connections_shed_total{reason="evicted"} 1`) {
		t.Errorf("metrics lack the eviction:\n%s", grepLines(w.Body.String(), "mogate_connections"))
	}
}

// serveCapped serves h's gateway on a loopback listener capped at max
// connections until the test ends.
func serveCapped(t *testing.T, max int) (h *harness, addr string) {
	t.Helper()
	h = newHarnessWith(t, testYAML, func(c *config.Config) { c.Limits.MaxConnections = max })
	ln, err := netListen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, ln.Addr().String()
}

// waitConns waits until the public listener holds n connections open
// (what "open") or serving a request (what "active").
func waitConns(t *testing.T, h *harness, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cl := h.s.conns.Load(); cl != nil {
			got := cl.Open()
			if what == "active" {
				got = cl.Active()
			}
			if got == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not reach %d %s connections", n, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// sendWebhook sends a provider's webhook answering a new verification of
// number on a new connection to addr, and checks it is answered 200 within
// 5 s and verifies the session.
func sendWebhook(t *testing.T, h *harness, addr, number string) {
	t.Helper()
	v := h.mustCreate(`{"number": "` + number + `"}`)
	r := h.signed("twilio", adapters.Inbound{From: number, To: "+14155550100", Text: "code " + v["code"].(string)})
	req, err := http.NewRequest(r.Method, "http://"+addr+r.URL.RequestURI(), bytes.NewReader(r.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header.Clone()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("webhook while the listener is at its cap: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook = %d", resp.StatusCode)
	}
	if got := h.get(v["id"].(string)); got["status"] != "verified" {
		t.Fatalf("after webhook: %v", got)
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
