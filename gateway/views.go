package gateway

import (
	"encoding/json"
	"time"

	"github.com/mogate/mogate/gateway/signals"
	"github.com/mogate/mogate/matcher"
)

type uiView struct {
	Text     string `json:"text"`
	SMSURI   string `json:"sms_uri"`
	QRPNGURL string `json:"qr_png_url"`
	PageURL  string `json:"page_url"`
	// WhatsAppURI and CallURI are the uri of the session's whatsapp and
	// call routes, left out when it has none.
	WhatsAppURI string `json:"whatsapp_uri,omitempty"`
	CallURI     string `json:"call_uri,omitempty"`
}

// routeView is one route of a session: where and how the user proves it.
type routeView struct {
	Channel string `json:"channel"`
	To      string `json:"to"`
	URI     string `json:"uri"`
}

// verificationView is the /v1 representation of a session.
type verificationView struct {
	ID          string          `json:"id"`
	Object      string          `json:"object"`
	Status      string          `json:"status"`
	Number      *string         `json:"number"`
	Code        string          `json:"code"`
	To          string          `json:"to"`
	Language    string          `json:"language"`
	ExpiresAt   time.Time       `json:"expires_at"`
	CreatedAt   time.Time       `json:"created_at"`
	CallbackURL *string         `json:"callback_url"`
	RedirectURL *string         `json:"redirect_url"`
	UI          uiView          `json:"ui"`
	Metadata    json.RawMessage `json:"metadata"`
	// Routes are the session's routes, left out when its one route is SMS
	// to To (a session whose create named no channels): such a client
	// sees the answer it always did.
	Routes []routeView `json:"routes,omitempty"`
}

// detailView is what GET and cancel return: the view plus the outcome.
type detailView struct {
	verificationView
	VerifiedNumber *string    `json:"verified_number"`
	VerifiedAt     *time.Time `json:"verified_at"`
	Attempts       int        `json:"attempts"`
	MaxAttempts    int        `json:"max_attempts"`
	Provider       *string    `json:"provider"`
	MessageID      *string    `json:"message_id"`
	// Reason says why a final status other than verified: superseded,
	// cancelled_by_api, max_attempts, expired or line_type_rejected; null
	// otherwise.
	Reason *string `json:"reason"`
	// Channel and RouteTo are the route of the message that verified the
	// session (or failed it by policy), Signals what mogate knows of that
	// message's sender; all left out otherwise.
	Channel string        `json:"channel,omitempty"`
	RouteTo string        `json:"route_to,omitempty"`
	Signals *signals.View `json:"signals,omitempty"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) view(v matcher.Session) verificationView {
	out := verificationView{
		ID: v.ID, Object: "verification", Status: v.Status.String(), Number: nullable(v.Number), Code: v.Code, To: v.To,
		Language: language(v.Language), ExpiresAt: v.ExpiresAt, CreatedAt: v.CreatedAt,
		CallbackURL: nullable(v.Callback), RedirectURL: nullable(v.Redirect),
		UI: uiView{
			Text: s.instruction(v), SMSURI: s.pageQRURI(v),
			QRPNGURL: s.base + "/v1/verifications/" + v.ID + "/qr.png",
			PageURL:  s.base + "/v/" + v.PageToken,
		},
		Metadata: v.Metadata,
	}
	if out.Metadata == nil {
		out.Metadata = json.RawMessage("{}")
	}
	if len(v.Routes) > 1 || len(v.Routes) == 1 && v.Routes[0] != (matcher.Route{Channel: matcher.ChannelSMS, To: v.To}) {
		for _, r := range v.Routes {
			rv := routeView{Channel: r.Channel, To: r.To, URI: s.routeURI(v, r)}
			out.Routes = append(out.Routes, rv)
			switch r.Channel {
			case matcher.ChannelWhatsApp:
				out.UI.WhatsAppURI = first(out.UI.WhatsAppURI, rv.URI)
			case matcher.ChannelCall:
				out.UI.CallURI = first(out.UI.CallURI, rv.URI)
			}
		}
	}
	return out
}

// routeURI is the link that starts route r of session v, a WhatsApp text
// naming the app of v's API key.
func (s *Server) routeURI(v matcher.Session, r matcher.Route) string {
	text := ""
	if r.Channel == matcher.ChannelWhatsApp {
		text = whatsappText(s.cfg.Verification.WhatsAppText, s.appName(v.Key), v.Code)
	}
	return routeURI(r, v.Code, text)
}

func (s *Server) detail(v matcher.Session) detailView {
	d := detailView{
		verificationView: s.view(v), Attempts: v.Attempts, MaxAttempts: v.MaxAttempts,
		VerifiedNumber: nullable(v.VerifiedNumber), Provider: nullable(v.Provider), MessageID: nullable(v.MessageID),
		Reason: nullable(matcher.Reason(v.Status, v.Reason)),
	}
	if v.Status == matcher.Verified {
		at := v.FinishedAt
		d.VerifiedAt = &at
	}
	if via, ok := signals.Via(v); ok {
		d.Channel, d.RouteTo, d.Signals = via.Channel, via.To, signals.Of(v)
	}
	return d
}
