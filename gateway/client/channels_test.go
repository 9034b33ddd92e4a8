package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/mogate/mogate/cmd/mogate/app"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway"
	"github.com/mogate/mogate/gateway/client"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
)

// TestClientChannels: Channels and ClientCountry reach the server, Routes
// and the ui links come back typed, a channel the pool cannot serve is an
// *Error with code channel_unavailable, and numbers list their channels
// (store: redis, which keeps routes).
func TestClientChannels(t *testing.T) {
	cfg, err := config.Parse([]byte(`
public_url: https://sms.example.com
store: redis
redis_url: `+redistest.Start(t).URL()+`
api_keys: [{name: app, key: `+key+`}]
providers: [{name: tw, type: twilio, auth_token: tok-0123456789}]
numbers: [{number: "+14155550100", provider: tw, channels: [sms, call]}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := app.New(gateway.Options{Config: cfg}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.SetReady(true)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	c := client.New(srv.URL, key, nil)

	v, err := c.Create(ctx, client.CreateRequest{Number: "+14155550123", Channels: []string{client.ChannelSMS, client.ChannelCall}, ClientCountry: "US"})
	want := []client.Route{
		{Channel: client.ChannelSMS, To: "+14155550100", URI: "sms:+14155550100?body=" + v.Code},
		{Channel: client.ChannelCall, To: "+14155550100", URI: "tel:+14155550100"},
	}
	if err != nil || !slices.Equal(v.Routes, want) || v.UI.CallURI != "tel:+14155550100" || v.UI.WhatsAppURI != "" {
		t.Fatalf("Create = %+v %v", v, err)
	}
	if got, err := c.Get(ctx, v.ID); err != nil || !slices.Equal(got.Routes, want) || got.Channel != "" || got.Signals != nil {
		t.Fatalf("Get = %+v %v", got, err)
	}
	_, err = c.Create(ctx, client.CreateRequest{Number: "+14155550124", Channels: []string{client.ChannelWhatsApp}})
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 422 || e.Code != "channel_unavailable" {
		t.Fatalf("whatsapp without a whatsapp number: %v", err)
	}
	if ns, err := c.Numbers(ctx); err != nil || len(ns) != 1 || !slices.Equal(ns[0].Channels, []string{"sms", "call"}) {
		t.Fatalf("Numbers = %+v %v", ns, err)
	}
}
