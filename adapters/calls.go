package adapters

import "strings"

// RejectCall is the TwiML (and Telnyx TeXML) document that refuses an
// inbound call before it is answered, so that neither the caller nor the
// operator pays for it. Every voice request is answered with it, whatever
// it matched (docs/channels.md).
const RejectCall = `<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>`

// Answerer is implemented by adapters whose provider expects an answer that
// depends on the request: a voice request is answered with RejectCall, a
// message with the adapter's Ack. ins are the events Parse returned for r.
// ok is false when the request needs no particular answer (the gateway
// then falls back to Ack, or to an empty 200). The gateway sends the answer
// only once the request's outcome is durable, for a redelivery as well.
type Answerer interface {
	Answer(r *Request, ins []Inbound) (status int, contentType string, body []byte, ok bool)
}

// AnswerCalls returns RejectCall as a 200 text/xml answer when ins holds a
// call, for the adapters whose providers speak TwiML or TeXML.
func AnswerCalls(ins []Inbound) (status int, contentType string, body []byte, ok bool) {
	for _, in := range ins {
		if in.Channel == ChannelCall {
			return 200, "text/xml", []byte(RejectCall), true
		}
	}
	return 0, "", nil, false
}

// lineTypes maps what providers call a line type, lower-cased and with
// everything but letters and digits removed, to a LineType constant:
// Telnyx messaging ("Wireless", "Wireline", "VoIP", "VoWiFi") and number
// lookup ("mobile", "fixed line", "voip", "toll free"), Twilio Lookup v2
// line_type_intelligence ("mobile", "landline", "fixedVoip",
// "nonFixedVoip", "tollFree", "premium", "sharedCost", "uan", "voicemail",
// "pager", "personal"), Vonage Number Insight ("landline_tollfree",
// "landline_premium", "virtual") and Prelude ("fixed_line", "toll_free",
// "shared_cost", "personal_number").
var lineTypes = map[string]string{
	"mobile": LineMobile, "wireless": LineMobile, "cellular": LineMobile, "cell": LineMobile,
	"landline": LineLandline, "wireline": LineLandline, "fixedline": LineLandline, "fixed": LineLandline,
	"voip": LineVoIP, "vowifi": LineVoIP, "fixedvoip": LineVoIP, "nonfixedvoip": LineVoIP, "virtual": LineVoIP,
	"tollfree": LineTollFree, "landlinetollfree": LineTollFree,
	// Not a type: the provider does not know.
	"unknown": "", "notavailable": "", "na": "", "null": "",
}

// NormalizeLineType maps a provider's name for a line type to one of the
// LineType constants: LineOther for a type that fits none of them, "" when
// the provider sent none or said it does not know.
func NormalizeLineType(s string) string {
	key := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return -1
	}, s)
	if key == "" {
		return ""
	}
	if t, ok := lineTypes[key]; ok {
		return t
	}
	return LineOther
}

// CountryCode returns s as an upper-case ISO 3166-1 alpha-2 code, or "" when
// it is not two ASCII letters.
func CountryCode(s string) string {
	s = strings.TrimSpace(s)
	if len(s) != 2 {
		return ""
	}
	out := []byte(strings.ToUpper(s))
	for _, c := range out {
		if c < 'A' || c > 'Z' {
			return ""
		}
	}
	return string(out)
}
