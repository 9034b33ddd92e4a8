package signals_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mogate/mogate/gateway/signals"
	"github.com/mogate/mogate/matcher"
)

func TestOf(t *testing.T) {
	created := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	verified := matcher.Session{
		Status: matcher.Verified, Number: "+14155550123", VerifiedNumber: "+14155550123", To: "+14155550100",
		CreatedAt: created, FinishedAt: created.Add(1500 * time.Millisecond), Attempts: 1,
	}
	with := func(f func(*matcher.Session)) matcher.Session {
		s := verified
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		s    matcher.Session
		want string // JSON; "null" when not proven
	}{
		{"pending", with(func(s *matcher.Session) { s.Status = matcher.Pending }), "null"},
		{"failed by attempts", with(func(s *matcher.Session) { s.Status, s.Reason = matcher.Failed, matcher.ReasonMaxAttempts }), "null"},
		{"cancelled", with(func(s *matcher.Session) { s.Status = matcher.Cancelled }), "null"},
		{"made before channels: sms, the number's country",
			verified, `{"channel":"sms","time_to_verify_ms":1500,"attempts":1,"sender_country":"US","sender_sessions_24h":0}`},
		{"provider's country wins; mismatch only when both known",
			with(func(s *matcher.Session) {
				s.ClientCountry, s.Signals.SenderCountry = "US", "CA"
			}), `{"channel":"sms","time_to_verify_ms":1500,"attempts":1,"sender_country":"CA","country_mismatch":true,"sender_sessions_24h":0}`},
		{"same country",
			with(func(s *matcher.Session) { s.ClientCountry = "US" }),
			`{"channel":"sms","time_to_verify_ms":1500,"attempts":1,"sender_country":"US","country_mismatch":false,"sender_sessions_24h":0}`},
		{"whatsapp says forwarded, even when false",
			with(func(s *matcher.Session) { s.Via = matcher.Route{Channel: matcher.ChannelWhatsApp, To: "+15550984277"} }),
			`{"channel":"whatsapp","time_to_verify_ms":1500,"attempts":1,"sender_country":"US","forwarded":false,"sender_sessions_24h":0}`},
		{"call with attestation and the store's count",
			with(func(s *matcher.Session) {
				s.Via = matcher.Route{Channel: matcher.ChannelCall, To: "+14155550100"}
				s.Signals = matcher.Signals{Attestation: "A", SenderSessions24h: 2}
			}), `{"channel":"call","time_to_verify_ms":1500,"attempts":1,"sender_country":"US","attestation":"A","sender_sessions_24h":2}`},
		{"failed by the line type policy, no verified number",
			with(func(s *matcher.Session) {
				s.Status, s.Reason, s.VerifiedNumber = matcher.Failed, matcher.ReasonLineTypeRejected, ""
				s.Signals = matcher.Signals{LineType: "voip", Carrier: "Bandwidth"}
			}), `{"channel":"sms","time_to_verify_ms":1500,"attempts":1,"sender_country":"US","line_type":"voip","carrier":"Bandwidth","sender_sessions_24h":0}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(signals.Of(tc.s))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("Of = %s\n want %s", b, tc.want)
			}
			via, ok := signals.Via(tc.s)
			if ok != (tc.want != "null") {
				t.Errorf("Via ok = %v", ok)
			}
			if ok && (via.To == "" || via.Channel == "") {
				t.Errorf("Via = %+v", via)
			}
		})
	}
}
