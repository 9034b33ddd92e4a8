package gateway

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/mogate/mogate/matcher"
	"github.com/nyaruka/phonenumbers"
)

// instructions holds "text CODE to NUMBER" per language; the first %s is the
// code, the second the number.
var instructions = map[string]string{
	"en": "Text %s to %s to verify your phone number.",
	"es": "Envía %s por SMS al %s para verificar tu número de teléfono.",
	"fr": "Envoyez %s par SMS au %s pour vérifier votre numéro de téléphone.",
	"de": "Senden Sie %s per SMS an %s, um Ihre Telefonnummer zu bestätigen.",
	"pt": "Envie %s por SMS para %s para verificar o seu número de telefone.",
	"hi": "अपना फ़ोन नंबर सत्यापित करने के लिए %s को %s पर SMS करें।",
	"ar": "أرسل %s في رسالة نصية إلى %s للتحقق من رقم هاتفك.",
	"zh": "请发送短信 %s 至 %s 以验证您的手机号码。",
}

// rtl lists the right-to-left languages.
var rtl = map[string]bool{"ar": true}

// language returns the supported language closest to tag ("pt-BR" -> "pt"),
// or "en".
func language(tag string) string {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
	base, _, _ = strings.Cut(base, "_")
	if _, ok := instructions[base]; ok {
		return base
	}
	return "en"
}

// humanNumber formats an E.164 number for reading: "+1 415-555-0100".
func humanNumber(e164 string) string {
	pn, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return e164
	}
	return phonenumbers.Format(pn, phonenumbers.INTERNATIONAL)
}

// uiText is the instruction in the session's language. In right-to-left
// text the code and number are isolated left-to-right so that "+1 415"
// keeps its order.
func uiText(s matcher.Session) string {
	lang := language(s.Language)
	to, _ := smsTo(s)
	code, number := s.Code, humanNumber(to)
	if rtl[lang] {
		code, number = "\u2066"+code+"\u2069", "\u2066"+number+"\u2069"
	}
	return fmt.Sprintf(instructions[lang], code, number)
}

// instruction is ui.text: the SMS instruction (uiText) when the session
// has an SMS route, else what its first route asks of the user in the
// session's language — the WhatsApp text to send and where, or the number
// to call — never "text the code" to a number that takes no SMS.
func (s *Server) instruction(sess matcher.Session) string {
	if _, ok := smsTo(sess); ok {
		return uiText(sess)
	}
	lang := language(sess.Language)
	r, t := sess.RoutesOrSMS()[0], pageText[lang]
	number := isolate(lang, humanNumber(r.To), false)
	if r.Channel == matcher.ChannelCall {
		return fmt.Sprintf(t["call_how"], number)
	}
	return fmt.Sprintf(t["wa_how"], isolate(lang, s.waText(sess), true), number)
}

// smsURI is the sms: link with the code as body, in the form Contiguity
// returns (RFC 5724 "?body="), which iOS and Android both open.
func smsURI(s matcher.Session) string {
	to, _ := smsTo(s)
	return "sms:" + to + "?body=" + url.QueryEscape(s.Code)
}

// smsTo is the number the user texts: that of the session's SMS route,
// which is To unless the create asked for another channel first; ok is
// false (and the number To) when the session has no SMS route.
func smsTo(s matcher.Session) (number string, ok bool) {
	for _, r := range s.RoutesOrSMS() {
		if r.Channel == matcher.ChannelSMS {
			return r.To, true
		}
	}
	return s.To, false
}
