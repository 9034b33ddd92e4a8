package gateway

import (
	"net/url"
	"strings"

	"github.com/mogate/mogate/matcher"
)

// routeURI is the link that starts a route on the user's phone: an sms:
// link with the code as body (the form smsURI documents), a wa.me link whose
// prefilled text names the app (verification.whatsapp_text, so a user lured
// into sending someone else's code sees whose it is), or a tel: link for a
// call (no code: the attested caller id is the proof).
func routeURI(r matcher.Route, code, text string) string {
	switch r.Channel {
	case matcher.ChannelWhatsApp:
		// %20, not +, for a space: the text is shown as the user will send it.
		return "https://wa.me/" + strings.TrimPrefix(r.To, "+") + "?text=" + strings.ReplaceAll(url.QueryEscape(text), "+", "%20")
	case matcher.ChannelCall:
		return "tel:" + r.To
	}
	return "sms:" + r.To + "?body=" + url.QueryEscape(code)
}

// whatsappText fills verification.whatsapp_text: {app} with the API key's
// app_name, {code} with the code. The template is checked at load (it
// holds {code}, and no other placeholder).
func whatsappText(tmpl, app, code string) string {
	return strings.NewReplacer("{app}", app, "{code}", code).Replace(tmpl)
}

// appName is the app_name of the API key named key ("" when the key is gone
// after a reload).
func (s *Server) appName(key string) string {
	for _, k := range s.live().keys {
		if k.Name == key {
			return k.AppName
		}
	}
	return ""
}
