package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/matcher"
)

// tapURI is the sms: link the user's phone opens: iOS separates the body
// with "&", Android (and RFC 5724) with "?".
func tapURI(sess matcher.Session, userAgent string) string {
	sep := "?"
	if ua := strings.ToLower(userAgent); strings.Contains(ua, "iphone") || strings.Contains(ua, "ipad") || strings.Contains(ua, "ipod") {
		sep = "&"
	}
	return "sms:" + sess.To + sep + "body=" + url.QueryEscape(sess.Code)
}

// nothingYetAfter is how long the hosted page waits, from the create, with
// nothing received before it says so and points to the other routes: the
// known failure of a reverse flow is a message that silently never
// arrives. A variable so that tests can shorten it.
var nothingYetAfter = 45 * time.Second

// pageRoute is one button of the hosted page.
type pageRoute struct {
	ID      string // the button's element id: "tap" for SMS, as before routes
	Channel string
	Label   string
	How     string // what the button does, in words (shown when there are several)
	Href    template.URL
}

// routeIDs are the buttons' element ids per channel.
var routeIDs = map[string]string{matcher.ChannelSMS: "tap", matcher.ChannelWhatsApp: "tap-whatsapp", matcher.ChannelCall: "tap-call"}

// isolate wraps s for right-to-left text: numbers and codes left to right
// (LRI…PDI), free text (the WhatsApp message) by its first strong letter
// (FSI…PDI).
func isolate(lang, s string, free bool) string {
	switch {
	case !rtl[lang]:
		return s
	case free:
		return "\u2068" + s + "\u2069"
	}
	return "\u2066" + s + "\u2069"
}

// waText is the prefilled text of the session's WhatsApp link: it names
// the app, and the page shows it too (a user lured into sending someone
// else's code sees whose it is).
func (s *Server) waText(sess matcher.Session) string {
	return whatsappText(s.cfg.Verification.WhatsAppText, s.appName(sess.Key), sess.Code)
}

// pageRoutes are the page's buttons, in the order of the session's routes.
// With the one sms route of a session that asked for no channels the page
// is what it was before routes: "Tap to text the code".
func (s *Server) pageRoutes(sess matcher.Session, lang, userAgent string) []pageRoute {
	t, routes := pageText[lang], sess.RoutesOrSMS()
	out := make([]pageRoute, 0, len(routes))
	for _, r := range routes {
		p := pageRoute{ID: routeIDs[r.Channel], Channel: r.Channel}
		number := isolate(lang, humanNumber(r.To), false)
		switch r.Channel {
		case matcher.ChannelWhatsApp:
			text := s.waText(sess)
			p.Label, p.How = t["send_whatsapp"], fmt.Sprintf(t["wa_how"], isolate(lang, text, true), number)
			p.Href = template.URL(routeURI(r, sess.Code, text)) //nolint:gosec // G203: https://wa.me/ with the query-escaped text
		case matcher.ChannelCall:
			p.Label, p.How = t["call"], fmt.Sprintf(t["call_how"], number)
			p.Href = template.URL(routeURI(r, sess.Code, "")) //nolint:gosec // G203: tel: and the pool number
		default:
			on := sess
			on.To = r.To
			p.ID, p.Channel, p.Label, p.How = "tap", matcher.ChannelSMS, t["send_sms"], uiText(on)
			p.Href = template.URL(tapURI(on, userAgent)) //nolint:gosec // G203: the pool number and the query-escaped code
		}
		out = append(out, p)
	}
	if len(out) == 1 && out[0].Channel == matcher.ChannelSMS {
		out[0].Label = t["tap"]
	}
	return out
}

// pageQRURI is the link the hosted page's QR holds, for a phone to open:
// the sms: link when the session has an SMS route, else the first route's
// (the wa.me link of a WhatsApp-only session).
func (s *Server) pageQRURI(sess matcher.Session) string {
	if _, ok := smsTo(sess); ok {
		return smsURI(sess)
	}
	r := sess.RoutesOrSMS()[0]
	text := ""
	if r.Channel == matcher.ChannelWhatsApp {
		text = s.waText(sess)
	}
	return routeURI(r, sess.Code, text)
}

// clockText formats a duration as the page's countdown does: m:ss, or
// h:mm:ss from an hour on (the script in pageTemplate formats alike).
func clockText(d time.Duration) string {
	sec := int64(max(0, (d+time.Second-1)/time.Second))
	h, m, ss := sec/3600, sec%3600/60, sec%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, ss)
	}
	return fmt.Sprintf("%d:%02d", m, ss)
}

// newNonce is a fresh CSP nonce: the page's one script and style carry it,
// and no other inline code runs.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) // no "+" or "=": html/template would escape them
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{{.T.title}}{{if .App}} · {{.App}}{{end}}</title>
{{if .Pending}}<noscript><meta http-equiv="refresh" content="5"></noscript>{{end}}
{{if and .Verified .Redirect}}<meta http-equiv="refresh" content="1;url={{.Redirect}}">{{end}}
<style nonce="{{.Nonce}}">
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;text-align:center;color:#111}
h1{margin-bottom:.2rem}
#app{margin-top:0;color:#444}
.code{font-size:2.2rem;letter-spacing:.2rem;font-weight:700;margin:.5rem 0}
.tap{display:block;background:#0a7cff;color:#fff;padding:1rem;border-radius:.6rem;text-decoration:none;font-size:1.2rem;margin:1rem 0 .3rem}
#tap-whatsapp{background:#1a8d48}
#tap-call{background:#444}
.how{font-size:.9rem;color:#444;margin:0 0 1rem}
#nothing{background:#fff6d6;border-radius:.6rem;padding:.6rem 1rem;margin:1rem 0}
.alt{margin:0 .5rem;color:#0a5fc4}
#status{font-size:1.2rem;margin:1.5rem 0}
.verified{color:#0a7d2c;font-weight:700}
img{width:220px;height:220px;image-rendering:pixelated}
</style>
</head>
<body>
<h1>{{.T.title}}</h1>
{{if .App}}<p id="app">{{.ForApp}}</p>{{end}}
<p id="instruction">{{.Instruction}}</p>
{{if .ShowCode}}<p class="code"><bdi>{{.Code}}</bdi></p>{{end}}
{{if .Number}}<p><bdi>{{.Number}}</bdi></p>{{end}}
{{if .Pending}}<div id="routes">{{range .Routes}}
<a class="tap" id="{{.ID}}" data-channel="{{.Channel}}" href="{{.Href}}">{{.Label}}</a>
{{if $.Several}}<p class="how">{{.How}}</p>{{end}}{{end}}
</div>
<p id="countdown" data-left-ms="{{.LeftMS}}">{{.T.left}} <bdi id="left">{{.Left}}</bdi></p>
<div id="nothing" data-after-ms="{{.HintMS}}"{{if .HintMS}} hidden{{end}}>
<p>{{.T.nothing_yet}}</p>
{{if .Several}}<p>{{.T.try_other}} {{range .Routes}}<a class="alt" data-channel="{{.Channel}}" href="{{.Href}}">{{.Label}}</a>{{end}}</p>
{{else}}<p>{{.T.try_again}}</p>{{end}}
</div>
<p id="scan">{{.T.scan}}</p>
<img id="qr" src="{{.QR}}" alt="QR">{{end}}
<p id="status" class="{{.Status}}" data-status="{{.Status}}">{{.StatusText}}</p>
{{if .Pending}}<script nonce="{{.Nonce}}">
(function(){
  var el=document.getElementById('status'), texts={{.JSTexts}};
  var left=document.getElementById('left'), end=Date.now()+Number(document.getElementById('countdown').dataset.leftMs);
  function two(n){return (n<10?'0':'')+n;}
  var tick=setInterval(function(){
    var s=Math.ceil(Math.max(0,end-Date.now())/1000), h=Math.floor(s/3600), m=Math.floor(s%3600/60);
    left.textContent=(h?h+':'+two(m):m)+':'+two(s%60);
    if(s<=0){clearInterval(tick);}
  },1000);
  // The hint points to the routes other than the one last tapped.
  var hint=document.getElementById('nothing'), alts=hint.querySelectorAll('.alt');
  document.querySelectorAll('#routes .tap').forEach(function(a){a.addEventListener('click',function(){
    alts.forEach(function(b){b.hidden=b.dataset.channel===a.dataset.channel;});
  });});
  var hintTimer=setTimeout(function(){hint.hidden=false;},Number(hint.dataset.afterMs));
  var es=new EventSource({{.Events}});
  es.addEventListener('status',function(e){
    var d=JSON.parse(e.data);
    el.dataset.status=d.status; el.className=d.status;
    el.textContent=(d.channel&&texts[d.status+'_'+d.channel])||texts[d.status]||d.status;
    if(d.status!=='pending'){es.close(); clearInterval(tick); clearTimeout(hintTimer);
      ['routes','countdown','nothing','qr','scan'].forEach(function(id){var n=document.getElementById(id); if(n){n.remove();}});
      if(d.status==='verified'&&d.redirect_url){setTimeout(function(){location.href=d.redirect_url;},800);}
    }
  });
})();
</script>{{end}}
</body>
</html>
`))

// pageCSP is the hosted page's Content-Security-Policy: only its own
// script and style run (by the response's nonce), it talks only to its own
// origin (the event stream) and loads only its own QR image.
const pageCSP = "default-src 'none'; img-src 'self'; style-src 'nonce-%[1]s'; script-src 'nonce-%[1]s'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

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
	for _, ch := range []string{matcher.ChannelSMS, matcher.ChannelWhatsApp, matcher.ChannelCall} {
		js["verified_"+ch] = t["verified_"+ch]
	}
	text := statusText[sess.Status]
	if ch := verifiedOn(sess); ch != "" {
		text = t["verified_"+ch]
	}
	routes := s.pageRoutes(sess, lang, c.GetHeader("User-Agent"))
	data := map[string]any{
		"Lang": lang, "Dir": dir, "T": t, "App": s.appName(sess.Key), "Code": sess.Code,
		"ForApp": fmt.Sprintf(t["for_app"], isolate(lang, s.appName(sess.Key), true)),
		"Routes": routes, "Several": len(routes) > 1, "QR": "/v/" + c.Param("token") + "/qr.png", "Events": "/v/" + c.Param("token") + "/events",
		"Pending": sess.Status == matcher.Pending, "Verified": sess.Status == matcher.Verified, "Redirect": sess.Redirect,
		"Status": sess.Status.String(), "StatusText": text, "JSTexts": js, "Nonce": newNonce(),
	}
	// One route: its words, its number, the code unless it is a call (as
	// before routes: "Text CODE to NUMBER"). Several: each button says
	// what it does.
	data["Instruction"], data["ShowCode"] = t["choose"], true
	if len(routes) == 1 {
		r := sess.RoutesOrSMS()[0]
		data["Instruction"], data["Number"], data["ShowCode"] = routes[0].How, humanNumber(r.To), r.Channel != matcher.ChannelCall
	}
	// Time left and the "nothing yet" hint, as of this server's clock; the
	// script counts down from here, whatever the user's clock says.
	now := time.Now()
	data["LeftMS"], data["Left"] = max(0, sess.ExpiresAt.Sub(now).Milliseconds()), clockText(sess.ExpiresAt.Sub(now))
	data["HintMS"] = max(0, (nothingYetAfter - now.Sub(sess.CreatedAt)).Milliseconds())
	nonce := data["Nonce"].(string)
	c.Header("Cache-Control", "no-store")
	c.Header("Content-Security-Policy", fmt.Sprintf(pageCSP, nonce))
	c.Header("X-Frame-Options", "DENY")
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/html; charset=utf-8")
	_ = pageTemplate.Execute(c.Writer, data)
}

// verifiedOn is the channel that verified the session, when the page
// should say it (the session had several routes), else "".
func verifiedOn(v matcher.Session) string {
	if v.Status != matcher.Verified || len(v.RoutesOrSMS()) < 2 || !matcher.ValidChannel(v.Via.Channel) {
		return ""
	}
	return v.Via.Channel
}

// pageView is what the page's event stream sends: the status and, once
// verified, where to go and (when the session had several routes) the
// channel that verified it; nothing else of the session.
func pageView(v matcher.Session) any {
	out := map[string]any{"status": v.Status.String()}
	if ch := verifiedOn(v); ch != "" {
		out["channel"] = ch
	}
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
	qrPNG(c, s.pageQRURI(sess))
}
