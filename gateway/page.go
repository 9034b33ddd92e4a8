package gateway

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/matcher"
)

// pageText holds the hosted page's strings per language (the instruction
// itself is instructions[lang], shared with ui.text).
var pageText = map[string]map[string]string{
	"en": {"title": "Verify your phone number", "tap": "Tap to text the code", "scan": "On a computer? Scan this code with your phone.", "waiting": "Waiting for your message…", "verified": "Verified ✓", "expired": "This verification has expired.", "cancelled": "This verification was cancelled.", "failed": "Too many wrong codes: this verification failed."},
	"es": {"title": "Verifica tu número de teléfono", "tap": "Toca para enviar el código", "scan": "¿En un ordenador? Escanea este código con tu teléfono.", "waiting": "Esperando tu mensaje…", "verified": "Verificado ✓", "expired": "Esta verificación ha caducado.", "cancelled": "Esta verificación se canceló.", "failed": "Demasiados códigos incorrectos: la verificación falló."},
	"fr": {"title": "Vérifiez votre numéro de téléphone", "tap": "Touchez pour envoyer le code", "scan": "Sur un ordinateur ? Scannez ce code avec votre téléphone.", "waiting": "En attente de votre message…", "verified": "Vérifié ✓", "expired": "Cette vérification a expiré.", "cancelled": "Cette vérification a été annulée.", "failed": "Trop de codes erronés : la vérification a échoué."},
	"de": {"title": "Telefonnummer bestätigen", "tap": "Tippen, um den Code zu senden", "scan": "Am Computer? Scannen Sie diesen Code mit Ihrem Telefon.", "waiting": "Warten auf Ihre Nachricht…", "verified": "Bestätigt ✓", "expired": "Diese Bestätigung ist abgelaufen.", "cancelled": "Diese Bestätigung wurde abgebrochen.", "failed": "Zu viele falsche Codes: Die Bestätigung ist fehlgeschlagen."},
	"pt": {"title": "Verifique o seu número de telefone", "tap": "Toque para enviar o código", "scan": "Num computador? Leia este código com o seu telefone.", "waiting": "À espera da sua mensagem…", "verified": "Verificado ✓", "expired": "Esta verificação expirou.", "cancelled": "Esta verificação foi cancelada.", "failed": "Demasiados códigos errados: a verificação falhou."},
	"hi": {"title": "अपना फ़ोन नंबर सत्यापित करें", "tap": "कोड भेजने के लिए टैप करें", "scan": "कंप्यूटर पर हैं? इस कोड को अपने फ़ोन से स्कैन करें।", "waiting": "आपके संदेश की प्रतीक्षा है…", "verified": "सत्यापित ✓", "expired": "यह सत्यापन समाप्त हो गया है।", "cancelled": "यह सत्यापन रद्द कर दिया गया।", "failed": "बहुत सारे गलत कोड: सत्यापन विफल हुआ।"},
	"ar": {"title": "تحقق من رقم هاتفك", "tap": "اضغط لإرسال الرمز", "scan": "على حاسوب؟ امسح هذا الرمز بهاتفك.", "waiting": "في انتظار رسالتك…", "verified": "تم التحقق ✓", "expired": "انتهت صلاحية هذا التحقق.", "cancelled": "تم إلغاء هذا التحقق.", "failed": "رموز خاطئة كثيرة: فشل التحقق."},
	"zh": {"title": "验证您的手机号码", "tap": "点击发送验证码", "scan": "在电脑上？请用手机扫描此二维码。", "waiting": "正在等待您的短信…", "verified": "已验证 ✓", "expired": "此验证已过期。", "cancelled": "此验证已取消。", "failed": "错误验证码过多：验证失败。"},
}

// tapURI is the sms: link the user's phone opens: iOS separates the body
// with "&", Android (and RFC 5724) with "?".
func tapURI(sess matcher.Session, userAgent string) string {
	sep := "?"
	if ua := strings.ToLower(userAgent); strings.Contains(ua, "iphone") || strings.Contains(ua, "ipad") || strings.Contains(ua, "ipod") {
		sep = "&"
	}
	return "sms:" + sess.To + sep + "body=" + url.QueryEscape(sess.Code)
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.T.title}}</title>
{{if .Pending}}<noscript><meta http-equiv="refresh" content="5"></noscript>{{end}}
{{if and .Verified .Redirect}}<meta http-equiv="refresh" content="1;url={{.Redirect}}">{{end}}
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;text-align:center;color:#111}
.code{font-size:2.2rem;letter-spacing:.2rem;font-weight:700;margin:.5rem 0}
.tap{display:block;background:#0a7cff;color:#fff;padding:1rem;border-radius:.6rem;text-decoration:none;font-size:1.2rem;margin:1rem 0}
#status{font-size:1.2rem;margin:1.5rem 0}
.verified{color:#0a7d2c;font-weight:700}
img{width:220px;height:220px;image-rendering:pixelated}
</style>
</head>
<body>
<h1>{{.T.title}}</h1>
<p id="instruction">{{.Instruction}}</p>
<p class="code"><bdi>{{.Code}}</bdi></p>
<p><bdi>{{.Number}}</bdi></p>
{{if .Pending}}<a class="tap" id="tap" href="{{.Tap}}">{{.T.tap}}</a>
<p id="scan">{{.T.scan}}</p>
<img id="qr" src="{{.QR}}" alt="QR">{{end}}
<p id="status" class="{{.Status}}" data-status="{{.Status}}">{{.StatusText}}</p>
{{if .Pending}}<script>
(function(){
  var el=document.getElementById('status'), texts={{.JSTexts}};
  var es=new EventSource({{.Events}});
  es.addEventListener('status',function(e){
    var d=JSON.parse(e.data);
    el.dataset.status=d.status; el.className=d.status; el.textContent=texts[d.status]||d.status;
    if(d.status!=='pending'){es.close();
      var tap=document.getElementById('tap'); if(tap){tap.remove();}
      ['qr','scan'].forEach(function(id){var n=document.getElementById(id); if(n){n.remove();}});
      if(d.status==='verified'&&d.redirect_url){setTimeout(function(){location.href=d.redirect_url;},800);}
    }
  });
})();
</script>{{end}}
</body>
</html>
`))

// page serves the hosted verification page GET /v/{page_token}.
func (s *Server) page(c *gin.Context) {
	sess, err := s.store.ByPageToken(c.Request.Context(), c.Param("token"))
	if err != nil {
		fail(c, s.lookupErr("page", err, "no such page"))
		return
	}
	lang := language(sess.Language)
	t := pageText[lang]
	dir := "ltr"
	if rtl[lang] {
		dir = "rtl"
	}
	statusText := map[matcher.Status]string{
		matcher.Pending: t["waiting"], matcher.Verified: t["verified"], matcher.Expired: t["expired"],
		matcher.Cancelled: t["cancelled"], matcher.Failed: t["failed"],
	}
	js := map[string]string{}
	for st, text := range statusText {
		js[st.String()] = text
	}
	base := "/v/" + c.Param("token")
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'")
	c.Header("X-Frame-Options", "DENY")
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/html; charset=utf-8")
	tap := template.URL(tapURI(sess, c.GetHeader("User-Agent"))) //nolint:gosec // G203: the pool number and the query-escaped code
	_ = pageTemplate.Execute(c.Writer, map[string]any{
		"Lang": lang, "Dir": dir, "T": t, "Instruction": uiText(sess), "Code": sess.Code, "Number": humanNumber(sess.To),
		"Tap": tap, "QR": base + "/qr.png", "Events": base + "/events",
		"Pending": sess.Status == matcher.Pending, "Verified": sess.Status == matcher.Verified, "Redirect": sess.Redirect,
		"Status": sess.Status.String(), "StatusText": statusText[sess.Status], "JSTexts": js,
	})
}

// pageView is what the page's event stream sends: the status and, once
// verified, where to go; nothing else of the session.
func pageView(v matcher.Session) any {
	out := map[string]any{"status": v.Status.String()}
	if v.Status == matcher.Verified && v.Redirect != "" {
		out["redirect_url"] = v.Redirect
	}
	return out
}

func (s *Server) pageEvents(c *gin.Context) {
	sess, err := s.store.ByPageToken(c.Request.Context(), c.Param("token"))
	if err != nil {
		fail(c, s.lookupErr("page", err, "no such page"))
		return
	}
	// No API key here: the page counts against its own cap only.
	release, err := s.holdPageStream(c.Request.Context(), sess.ID)
	if err != nil {
		fail(c, err)
		return
	}
	defer release()
	s.stream(c, sess, pageView)
}

// pageQR serves the hosted page's QR, GET /v/{page_token}/qr.png: no API
// key, the token is unguessable. Once the verification is final, texting
// its code does nothing, so there is no QR any more (404).
func (s *Server) pageQR(c *gin.Context) {
	sess, err := s.store.ByPageToken(c.Request.Context(), c.Param("token"))
	if err != nil {
		fail(c, s.lookupErr("page", err, "no such page"))
		return
	}
	if sess.Status != matcher.Pending {
		fail(c, withMessage(matcher.ErrNotFound, "the verification is %s: no QR code any more", sess.Status))
		return
	}
	qrPNG(c, sess)
}
