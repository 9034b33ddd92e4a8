package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
	"github.com/mogate/mogate/gateway/client"
)

const key = "client-test-key-0123456789"

func server(t *testing.T) string {
	t.Helper()
	cfg, err := config.Parse([]byte(`
public_url: https://sms.example.com
api_keys: [{name: app, key: `+key+`}]
providers: [{name: tw, type: twilio, auth_token: tok-0123456789}]
numbers: [{number: "+14155550100", provider: tw}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := app.New(gateway.Options{Config: cfg}, true)
	if err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// Every call against a real gateway: typed answers, and errors with the
// status and the stable code.
func TestClient(t *testing.T) {
	ctx := context.Background()
	c := client.New(server(t), key, nil)
	v, err := c.Create(ctx, client.CreateRequest{Number: "+14155550123", Metadata: json.RawMessage(`{"order":7}`), IdempotencyKey: "k1"})
	if err != nil || v.Status != "pending" || v.To != "+14155550100" || v.Code == "" || string(v.Metadata) != `{"order":7}` {
		t.Fatalf("Create = %+v %v", v, err)
	}
	if again, err := c.Create(ctx, client.CreateRequest{Number: "+14155550123", Metadata: json.RawMessage(`{"order":7}`), IdempotencyKey: "k1"}); err != nil || again.ID != v.ID {
		t.Fatalf("idempotent Create = %+v %v", again, err)
	}
	if got, err := c.Get(ctx, v.ID); err != nil || got.ID != v.ID || got.Reason != "" || got.MaxAttempts != 3 {
		t.Fatalf("Get = %+v %v", got, err)
	}
	if l, err := c.Pending(ctx, "+14155550123"); err != nil || len(l) != 1 || l[0].ID != v.ID {
		t.Fatalf("Pending = %+v %v", l, err)
	}
	if l, err := c.Pending(ctx, "+14155550999"); err != nil || len(l) != 0 {
		t.Fatalf("Pending of another sender = %+v %v", l, err)
	}
	if ns, err := c.Numbers(ctx); err != nil || len(ns) != 1 || ns[0].Provider != "tw" {
		t.Fatalf("Numbers = %+v %v", ns, err)
	}
	// Wait returns when the status changes.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = c.Cancel(ctx, v.ID)
	}()
	if got, err := c.Wait(ctx, v.ID, 30*time.Second); err != nil || got.Status != "cancelled" || got.Reason != "cancelled_by_api" {
		t.Fatalf("Wait = %+v %v", got, err)
	}
	// Errors.
	var e *client.Error
	if _, err := c.Cancel(ctx, v.ID); !errors.As(err, &e) || e.Status != 409 || e.Code != "not_pending" {
		t.Fatalf("second Cancel = %v", err)
	}
	if _, err := c.Get(ctx, "vrf_nope"); !client.IsNotFound(err) {
		t.Fatalf("Get unknown = %v", err)
	}
	if _, err := client.New(server(t), "wrong-key-0123456789", nil).Get(ctx, v.ID); !errors.As(err, &e) || e.Status != 401 || e.Code != "invalid_api_key" {
		t.Fatalf("wrong key = %v", err)
	}
	// The context ends a long-poll.
	w, _ := c.Create(ctx, client.CreateRequest{Number: "+14155550124"})
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(cctx, w.ID, time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past its context = %v", err)
	}
}
