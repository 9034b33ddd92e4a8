package gateway

import (
	"encoding/json"
	"time"

	"github.com/mogate/mogate/matcher"
)

type uiView struct {
	Text     string `json:"text"`
	SMSURI   string `json:"sms_uri"`
	QRPNGURL string `json:"qr_png_url"`
	PageURL  string `json:"page_url"`
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
	// cancelled_by_api, max_attempts or expired; null otherwise.
	Reason *string `json:"reason"`
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
			Text: uiText(v), SMSURI: smsURI(v),
			QRPNGURL: s.base + "/v1/verifications/" + v.ID + "/qr.png",
			PageURL:  s.base + "/v/" + v.PageToken,
		},
		Metadata: v.Metadata,
	}
	if out.Metadata == nil {
		out.Metadata = json.RawMessage("{}")
	}
	return out
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
	return d
}
