package gateway

import (
	"testing"

	"github.com/mogate/mogate/matcher"
)

func TestRouteURI(t *testing.T) {
	text := whatsappText("{app} code {code}", "Acme & Co", "482913")
	for _, c := range []struct {
		r    matcher.Route
		want string
	}{
		{matcher.Route{Channel: matcher.ChannelSMS, To: "+14155550142"}, "sms:+14155550142?body=482913"},
		{matcher.Route{Channel: "", To: "+14155550142"}, "sms:+14155550142?body=482913"},
		{matcher.Route{Channel: matcher.ChannelWhatsApp, To: "+15550984277"}, "https://wa.me/15550984277?text=Acme%20%26%20Co%20code%20482913"},
		{matcher.Route{Channel: matcher.ChannelCall, To: "+14155550142"}, "tel:+14155550142"},
	} {
		if got := routeURI(c.r, "482913", text); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}
