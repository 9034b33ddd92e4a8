// Package signals renders what mogate knows of how a session was proven:
// the `channel` and `to` of the route that verified it (or failed it by
// policy) and its `signals` object, as the API's views and both event
// formats carry them (docs/api.md, "Signals"). It is shared by the gateway
// and its outbox, so that every answer says the same.
package signals

import (
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// View is the `signals` object of a session. A field mogate does not know
// is left out; Channel, TimeToVerifyMS, Attempts and SenderSessions24h are
// always known.
type View struct {
	// Channel of the route that verified (or failed) the session.
	Channel string `json:"channel"`
	// TimeToVerifyMS is from the create to the matching message.
	TimeToVerifyMS int64 `json:"time_to_verify_ms"`
	// Attempts is the wrong codes the expected sender sent before.
	Attempts int `json:"attempts"`
	// SenderCountry is the sender's ISO country as the provider gave it,
	// else the region of the verified number.
	SenderCountry string `json:"sender_country,omitempty"`
	// CountryMismatch is set only when both the create's client_country
	// and SenderCountry are known: true when they differ.
	CountryMismatch *bool `json:"country_mismatch,omitempty"`
	// LineType is the provider's line type, normalised (mobile, landline,
	// voip, toll_free, other).
	LineType string `json:"line_type,omitempty"`
	// Carrier is the sender's carrier as the provider named it.
	Carrier string `json:"carrier,omitempty"`
	// Attestation is a call's STIR/SHAKEN attestation.
	Attestation string `json:"attestation,omitempty"`
	// Forwarded is set for a WhatsApp message: whether it was forwarded.
	Forwarded *bool `json:"forwarded,omitempty"`
	// SenderSessions24h counts the sessions of the same API key verified
	// for the same sender in the 24 hours before this one.
	SenderSessions24h int `json:"sender_sessions_24h"`
}

// Proven reports whether s was proven by a message: verified, or failed
// by a policy on what the message told (reason line_type_rejected). Only
// such a session has a channel and signals.
func Proven(s matcher.Session) bool {
	return s.Status == matcher.Verified ||
		s.Status == matcher.Failed && matcher.Reason(s.Status, s.Reason) == matcher.ReasonLineTypeRejected
}

// Via returns the route of the message that proved s: its Via, or for a
// session recorded before routes existed the SMS route to its number. ok
// is false when s was not proven (Proven).
func Via(s matcher.Session) (r matcher.Route, ok bool) {
	if !Proven(s) {
		return matcher.Route{}, false
	}
	r = s.Via
	if r.Channel == "" {
		r.Channel = matcher.ChannelSMS
	}
	if r.To == "" {
		r.To = s.To
	}
	return r, true
}

// Of returns the signals of s, nil when s was not proven (Proven).
func Of(s matcher.Session) *View {
	via, ok := Via(s)
	if !ok {
		return nil
	}
	g := s.Signals
	v := &View{
		Channel: via.Channel, Attempts: s.Attempts, SenderSessions24h: g.SenderSessions24h,
		LineType: g.LineType, Carrier: g.Carrier, Attestation: g.Attestation, SenderCountry: g.SenderCountry,
	}
	if !s.FinishedAt.IsZero() && !s.CreatedAt.IsZero() {
		v.TimeToVerifyMS = max(0, s.FinishedAt.Sub(s.CreatedAt).Milliseconds())
	}
	sender := s.VerifiedNumber
	if sender == "" {
		sender = s.Number // a session failed by policy records no verified number
	}
	if v.SenderCountry == "" {
		if r, err := pool.Region(sender); err == nil {
			v.SenderCountry = r
		}
	}
	if s.ClientCountry != "" && v.SenderCountry != "" {
		mismatch := s.ClientCountry != v.SenderCountry
		v.CountryMismatch = &mismatch
	}
	if via.Channel == matcher.ChannelWhatsApp {
		fwd := g.Forwarded
		v.Forwarded = &fwd
	}
	return v
}
