package adapters

import "testing"

func TestNormalizeLineType(t *testing.T) {
	cases := []struct{ in, want string }{
		// Telnyx messaging (from.line_type) and number lookup (carrier.type).
		{"Wireless", LineMobile}, {"Wireline", LineLandline}, {"VoIP", LineVoIP}, {"VoWiFi", LineVoIP},
		{"mobile", LineMobile}, {"fixed line", LineLandline}, {"voip", LineVoIP}, {"toll free", LineTollFree},
		{"Toll Free", LineTollFree},
		// Twilio Lookup v2 line_type_intelligence.type.
		{"landline", LineLandline}, {"fixedVoip", LineVoIP}, {"nonFixedVoip", LineVoIP}, {"tollFree", LineTollFree},
		{"premium", LineOther}, {"sharedCost", LineOther}, {"uan", LineOther}, {"voicemail", LineOther},
		{"pager", LineOther}, {"personal", LineOther}, {"unknown", ""},
		// Vonage Number Insight, Prelude, Telesign.
		{"landline_tollfree", LineTollFree}, {"landline_premium", LineOther}, {"virtual", LineVoIP},
		{"fixed_line", LineLandline}, {"toll_free", LineTollFree}, {"shared_cost", LineOther},
		{"personal_number", LineOther}, {"MOBILE", LineMobile}, {"FIXED_LINE", LineLandline}, {"TOLL-FREE", LineTollFree},
		// Nothing sent.
		{"", ""}, {"  ", ""}, {"-", ""}, {"Not Available", ""},
		// A name no provider documents is still a type: other.
		{"satellite", LineOther}, {"Wireless 2", LineOther},
	}
	for _, tc := range cases {
		if got := NormalizeLineType(tc.in); got != tc.want {
			t.Errorf("NormalizeLineType(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCountryCode(t *testing.T) {
	for in, want := range map[string]string{"US": "US", "ca": "CA", " gb ": "GB", "USA": "", "1A": "", "": "", "é": ""} {
		if got := CountryCode(in); got != want {
			t.Errorf("CountryCode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnswerCalls(t *testing.T) {
	if _, _, _, ok := AnswerCalls([]Inbound{{Channel: ChannelSMS}, {}}); ok {
		t.Error("messages answered as a call")
	}
	if _, _, _, ok := AnswerCalls(nil); ok {
		t.Error("no event answered as a call")
	}
	status, ct, body, ok := AnswerCalls([]Inbound{{Channel: ChannelCall, Attestation: "B"}})
	if !ok || status != 200 || ct != "text/xml" || string(body) != `<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>` {
		t.Errorf("AnswerCalls(call) = %d %q %q %v", status, ct, body, ok)
	}
}
