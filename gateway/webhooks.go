package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
)

// webhook handles POST and GET /webhooks/{provider}: read the body once,
// verify, parse, ingest every message durably, then acknowledge.
func (s *Server) webhook(c *gin.Context) {
	name := c.Param("provider")
	ad, ok := s.adapters[name]
	if !ok {
		fail(c, errorf(http.StatusNotFound, "unknown_provider", "no provider named %q is configured", name))
		return
	}
	result := "error"
	defer func() { s.metrics.webhooks.WithLabelValues(name, result).Inc() }()
	body, err := readBody(c)
	if err != nil {
		result = "too_large"
		fail(c, err)
		return
	}
	// The signed URL is public_url + the request URI exactly as received;
	// Host and X-Forwarded-* are never consulted.
	u, err := s.urls[name].parse(s.base, c.Request.RequestURI)
	if err != nil {
		result = "malformed"
		fail(c, errorf(http.StatusBadRequest, "bad_url", "unparseable request URI"))
		return
	}
	req := &adapters.Request{Method: c.Request.Method, URL: u, Header: c.Request.Header, Body: body}
	if hs, ok := ad.(adapters.Handshaker); ok && req.Method == http.MethodGet {
		// The provider checks the endpoint (Meta's hub.challenge): the
		// adapter authenticates it and says what to answer.
		status, ct, b := hs.Handshake(req)
		switch result = "handshake"; {
		case status == http.StatusBadRequest:
			result = "malformed"
		case status != http.StatusOK:
			result = "unauthenticated"
			s.refused(c, name, u, "handshake refused")
		}
		answer(c, status, ct, b)
		return
	}
	// One deadline for the request's storage work, from here (a slow
	// upload does not spend it): a stalled Redis is a 503 within
	// storeBudget, whatever number of calls the request makes.
	sctx := withBudget(c.Request.Context(), storeBudget)
	defer sctx.stop()
	if err := ad.Verify(req); err != nil {
		result = "unauthenticated"
		s.refused(c, name, u, err.Error())
		if errors.Is(err, adapters.ErrMissingSignature) {
			if ch, ok := ad.(adapters.Challenger); ok {
				c.Header("WWW-Authenticate", ch.Challenge())
			}
		}
		fail(c, ofKind(err, adapters.ErrUnauthenticated))
		return
	}
	if nc, ok := ad.(adapters.Noncer); ok {
		if nonce, bodySigned := nc.Nonce(req); nonce != "" {
			// Every accepted request spends its nonce, durably; a signature
			// that does not cover the body is good for one request only.
			fresh, err := s.store.SpendNonce(sctx, name, nonce)
			if err != nil {
				fail(c, s.storeErr("nonce "+name, err))
				return
			}
			if !fresh && !bodySigned {
				result = "unauthenticated"
				s.refused(c, name, u, "nonce already used by an accepted request, and the signature does not cover the body")
				fail(c, adapters.ErrUnauthenticated)
				return
			}
		}
	}
	if cf, ok := ad.(adapters.Confirmer); ok {
		if u := cf.SubscribeURL(req); u != "" {
			if err := s.confirm(c.Request.Context(), u); err != nil {
				s.log.Error("subscription confirmation failed", "provider", name, "err", err)
				e := errorf(http.StatusServiceUnavailable, "unavailable", "could not confirm the subscription; retry")
				e.RetryAfter = 20
				fail(c, e)
				return
			}
			s.log.Info("subscription confirmed", "provider", name)
		}
	}
	ins, err := ad.Parse(req)
	if err != nil {
		result = "malformed"
		s.log.Warn("webhook malformed", "provider", name, "reason", err.Error())
		fail(c, withMessage(ofKind(err, adapters.ErrMalformed), "the payload is not a valid %s message", name))
		return
	}
	// Every message is checked before any is stored: a malformed one
	// refuses the request (400) and nothing of it is kept.
	rt := s.live() // one configuration for the whole request
	for i := range ins {
		if err := s.complete(rt.pool, name, &ins[i]); err != nil {
			result = "malformed"
			s.log.Warn("webhook malformed", "provider", name, "message_id", ins[i].MessageID, "reason", err.Error())
			fail(c, err)
			return
		}
	}
	for _, in := range ins {
		n, ok := s.speaksFor(rt, name, in)
		if !ok || !s.accepts(n, name, in) {
			continue
		}
		if err := s.ingest(sctx, rt, name, in); err != nil {
			// Not durable: no 2xx, so the provider retries — except a call:
			// a voice request is not retried but sent to a fallback URL or
			// answered with an error message, which answers (and bills) the
			// call. It is declined all the same; the caller can call again.
			serr := s.storeErr("ingest "+name+" "+in.MessageID, err)
			if a, ok := ad.(adapters.Answerer); ok {
				if status, ct, b, ok := a.Answer(req, ins); ok {
					s.log.Warn("call declined unrecorded: the store failed", "provider", name, "message_id", in.MessageID)
					answer(c, status, ct, b)
					return
				}
			}
			fail(c, serr)
			return
		}
	}
	result = "accepted"
	// A voice request is answered with a rejection whatever it matched
	// (the call is refused before it is answered, so nobody pays).
	if a, ok := ad.(adapters.Answerer); ok {
		if status, ct, b, ok := a.Answer(req, ins); ok {
			answer(c, status, ct, b)
			return
		}
	}
	if a, ok := ad.(adapters.Acker); ok {
		status, ct, b := a.Ack()
		answer(c, status, ct, b)
		return
	}
	answer(c, http.StatusOK, "text/plain; charset=utf-8", nil) // typed, so that openapi.json can say what it is
}

// signedURL is the URL a provider entry's last webhook was signed for,
// parsed: a provider calls the same URL every time, so that each webhook
// need not join and parse it again. One URL, the last, is kept: a request
// URI that changes every time (a query) is parsed every time, and holds
// nothing.
type signedURL struct{ last atomic.Pointer[parsedURL] }

type parsedURL struct {
	base, uri string
	u         *url.URL
}

// parse returns base + uri parsed, shared with every request of the same
// base and uri (adapters.Request.URL: never modified).
func (c *signedURL) parse(base, uri string) (*url.URL, error) {
	if p := c.last.Load(); p != nil && p.uri == uri && p.base == base {
		return p.u, nil
	}
	u, err := url.Parse(base + uri)
	if err != nil {
		return nil, err
	}
	c.last.Store(&parsedURL{base: base, uri: uri, u: u})
	return u, nil
}

// answer writes a webhook's answer as c.Data does, without its two
// allocations per request (the render.Data boxed for c.Render, and the
// Content-Type header's value): each content type's value is made once
// and shared by every answer of that type. net/http copies the header when
// it writes it, and nothing changes a header value in place.
func answer(c *gin.Context, status int, ct string, b []byte) {
	c.Status(status)
	if h := c.Writer.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = contentTypes.get(ct)
	}
	if status >= 100 && status <= 199 || status == http.StatusNoContent || status == http.StatusNotModified {
		c.Writer.WriteHeaderNow() // no body allowed, as c.Data
		return
	}
	if _, err := c.Writer.Write(b); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}

// contentTypes are the Content-Type header values of the webhooks'
// answers, one per content type (the adapters answer with a few
// constants).
var contentTypes headerValues

// headerValues hands out one shared header value per string, read without
// a lock; past maxHeaderValues strings it makes a new one each time, so
// nothing outside can grow it. Each value has no spare capacity: an
// append to it (Header.Add) copies it.
type headerValues struct {
	m  atomic.Pointer[map[string][]string]
	mu sync.Mutex
}

const maxHeaderValues = 64

func (h *headerValues) get(v string) []string {
	if m := h.m.Load(); m != nil {
		if s, ok := (*m)[v]; ok {
			return s
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.m.Load()
	if old != nil {
		if s, ok := (*old)[v]; ok {
			return s
		}
		if len(*old) >= maxHeaderValues {
			return []string{v}
		}
	}
	m := make(map[string][]string, 1)
	if old != nil {
		maps.Copy(m, *old)
	}
	s := []string{v}
	m[v] = s
	h.m.Store(&m)
	return s
}

// ofKind returns err when it is of kind, else err wrapped as kind: an
// adapter error the contract did not foresee is still answered as its kind.
func ofKind(err, kind error) error {
	if errors.Is(err, kind) {
		return err
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// complete fills in the receiving number of a payload without one: the
// entry's number with the provider's id of the message's number (ToID;
// none leaves To empty: unknown_number), else the entry's only pool number.
// It resolves a national sender with the receiving number's country. A
// message still without sender, receiving number or id is
// errMalformedMessage.
func (s *Server) complete(p *pool.Pool, provider string, in *adapters.Inbound) error {
	switch {
	case in.To == "" && in.ToID != "":
		if n, ok := p.ByNumberID(provider, in.ToID); ok {
			in.To = n.Number
		}
	case in.To == "":
		if ns := p.ByProvider(provider); len(ns) == 1 {
			in.To = ns[0].Number
		}
	}
	switch {
	case in.From == "":
		return withMessage(errMalformedMessage, "the message has no sender")
	case in.To == "" && in.ToID == "":
		return withMessage(errMalformedMessage, "the message has no receiving number, and provider entry %q has more than one", provider)
	case in.MessageID == "":
		return withMessage(errMalformedMessage, "the message has no id")
	}
	// A national sender (an Android phone shows what the handset shows) is
	// resolved with the receiving number's country; a hidden sender's id
	// is no number.
	if !in.SenderHidden {
		in.From = pool.National(in.From, in.To)
	}
	return nil
}

// accepts reports whether a message for n, one of the entry's numbers, may
// be matched: the number must serve the message's channel (else
// wrong_channel), and the provider must have given the sender's phone
// number (else sender_hidden: a WhatsApp username never verifies
// anything). Any other message is acknowledged, counted and logged, and
// changes nothing.
func (s *Server) accepts(n *pool.Number, provider string, in adapters.Inbound) bool {
	var outcome, why string
	switch {
	case !n.Serves(in.ChannelOf()):
		outcome, why = "wrong_channel", "message ignored: the number does not serve this channel"
	case in.SenderHidden:
		outcome, why = "sender_hidden", "message ignored: the provider withheld the sender's phone number"
	case in.ChannelOf() == adapters.ChannelWhatsApp && !in.ReceivedAt.IsZero() && s.now().Sub(in.ReceivedAt) > s.cfg.Retention:
		// Older than the dedupe memory: Meta signs no time beside the
		// body's own timestamp and retries for days, so a replay of a
		// recorded delivery would be new to the dedupe. (The SMS providers
		// either sign a time checked within minutes, or state none.)
		outcome, why = "stale", "message ignored: older than retention, the window in which redeliveries are recognised"
	default:
		return true
	}
	s.metrics.messages.WithLabelValues(provider, outcome, in.ChannelOf()).Inc()
	s.log.Warn(why, "provider", provider, "outcome", outcome, "channel", in.ChannelOf(), "message_id", in.MessageID, "to", maskNumber(in.To))
	return false
}

// speaksFor reports whether a provider entry may act on a message, and the
// pool number it is for: an entry speaks only for its own pool numbers
// (docs/security.md), so the weakest credential cannot act for another
// carrier's numbers. Any other message
// is acknowledged, counted and logged, and changes nothing.
func (s *Server) speaksFor(rt *reloadable, provider string, in adapters.Inbound) (*pool.Number, bool) {
	n, ok := rt.pool.Lookup(in.To)
	var outcome string
	switch {
	case !ok:
		outcome = "unknown_number"
	case n.Provider != provider:
		outcome = "wrong_provider"
	default:
		return n, true
	}
	s.metrics.messages.WithLabelValues(provider, outcome, in.ChannelOf()).Inc()
	attrs := []any{"provider", provider, "outcome", outcome, "message_id", in.MessageID, "to", maskNumber(in.To)}
	if in.ToID != "" {
		attrs = append(attrs, "to_id", in.ToID)
	}
	if ok {
		attrs = append(attrs, "owner", n.Provider)
	}
	s.log.Warn("message ignored: not for a number of this provider entry", attrs...)
	return nil, false
}

// ingest matches a complete message durably. The sender's budgets that
// span receiving numbers (unmatched messages, capture guesses) guard
// capture matching only: a message that its sender's own session decides,
// or a redelivery, is matched without them, in one store call. Any other
// is charged before its match (ingestCharged), each budget in one atomic
// step, so that concurrent messages to several numbers, on any replicas,
// share one budget; a charge the message turns out not to need is given
// back.
func (s *Server) ingest(ctx context.Context, rt *reloadable, provider string, in adapters.Inbound) error {
	msg := matcher.Message{
		Provider: provider, MessageID: in.MessageID, From: in.From, To: in.To, Text: in.Text,
		Parts: in.Parts, Part: in.Part, PartsRef: in.PartsRef,
		Channel: in.ChannelOf(), LineType: in.LineType, Carrier: in.Carrier, SenderCountry: in.SenderCountry,
		Attestation: in.Attestation, Forwarded: in.Forwarded,
	}
	if in.LineType != "" && slices.Contains(s.cfg.Verification.RejectLineTypes, in.LineType) {
		// The policy refuses this line type: the session this message
		// would verify fails instead (reason line_type_rejected).
		msg.RejectReason = matcher.ReasonLineTypeRejected
	}
	if msg.Channel == matcher.ChannelCall {
		return s.ingestCall(ctx, rt, provider, in, msg)
	}
	// Only a phone number can be a capture session's verified number: an
	// alphanumeric sender or a user id never tries capture codes, and so
	// never needs the budgets that guard them. For the others the first
	// call tries only the sender's own sessions (OwnFirst), which need no
	// budget: the common message, the code of the sender's own session,
	// is matched in one store call; a duplicate is answered by it. Only a
	// message that capture matching could reach comes back NeedsBudget,
	// having changed nothing, and is ingested again with the charges.
	opt := matcher.IngestOptions{NoCapture: !phoneNumber(in.From), UnmatchedKeys: rt.unmatchedKeys}
	opt.OwnFirst = !opt.NoCapture && (limited(rt.unmatchedLimit) || limited(rt.captureLimit))
	out, err := s.store.Ingest(ctx, msg, opt)
	if err != nil {
		return err // 503: the provider retries; nothing was charged
	}
	if out.NeedsBudget {
		if out, err = s.ingestCharged(ctx, rt, msg); err != nil {
			return err
		}
	}
	outcome := out.Kind.String()
	if out.Duplicate {
		outcome = "duplicate"
	}
	s.metrics.messages.WithLabelValues(provider, outcome, in.ChannelOf()).Inc()
	switch {
	case out.Duplicate:
	case out.Kind == matcher.Matched:
		rt.pool.Verified(in.To)
	case out.Kind == matcher.Attempted:
		// Verified and failed sessions are logged by finished, with the
		// session; a wrong code is logged here, never the text.
		if sess, err := s.store.Get(ctx, out.SessionID); err == nil {
			s.lifecycle("verification attempt", sess, provider, "from", maskNumber(in.From))
		}
	case out.Kind == matcher.Unmatched:
		// Never log the text: it may hold a code. A flood is sampled: one
		// line per entry and second, with the count of the others.
		if ok, suppressed := s.unmatchedLog.allow(provider); ok {
			attrs := []any{"provider", provider, "message_id", in.MessageID, "to", in.To, "from", maskNumber(in.From), "capture_blocked", !out.CaptureTried}
			if suppressed > 0 {
				attrs = append(attrs, "suppressed", suppressed)
			}
			s.log.Info("unmatched message", attrs...)
		}
	}
	return nil
}

// ingestCharged ingests a message that capture matching could reach: it
// charges its sender's unmatched budget and, while one is left, a capture
// guess (each in one atomic step, shared by all replicas), then gives
// back what the outcome did not use: the unmatched charge unless the
// message matched nothing, the guess unless capture sessions were tried.
func (s *Server) ingestCharged(ctx context.Context, rt *reloadable, msg matcher.Message) (matcher.Outcome, error) {
	unmatched, err := rt.unmatchedLimit.charge(ctx, msg.From)
	if err != nil {
		return matcher.Outcome{}, err // 503: the provider retries; nothing was charged
	}
	guess := false
	if unmatched {
		if guess, err = rt.captureLimit.charge(ctx, msg.From); err != nil {
			rt.unmatchedLimit.refund(ctx, msg.From)
			return matcher.Outcome{}, err
		}
	}
	out, err := s.store.Ingest(ctx, msg, matcher.IngestOptions{NoCapture: !guess, UnmatchedKeys: rt.unmatchedKeys})
	if err != nil {
		// The message may still have been matched: the charges stand.
		return matcher.Outcome{}, err
	}
	if guess && (out.Duplicate || !out.CaptureTried) {
		rt.captureLimit.refund(ctx, msg.From)
	}
	if unmatched && (out.Duplicate || out.Kind != matcher.Unmatched) {
		rt.unmatchedLimit.refund(ctx, msg.From)
	}
	return out, nil
}

// refused logs a webhook whose authentication failed, with the client IP
// and the URL the signature was checked against (without its query, which
// may hold the message).
func (s *Server) refused(c *gin.Context, provider string, signed *url.URL, reason string) {
	checked := *signed
	checked.RawQuery, checked.Fragment = "", ""
	s.log.Warn("webhook refused", "provider", provider, "client_ip", c.ClientIP(), "signed_url", checked.String(),
		"query_bytes", len(signed.RawQuery), "reason", reason)
}

// confirm GETs a verified subscription confirmation URL.
func (s *Server) confirm(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// maskNumber keeps a number's country code and last two digits.
func maskNumber(n string) string {
	if len(n) < 6 {
		return strings.Repeat("*", len(n))
	}
	return n[:3] + strings.Repeat("*", len(n)-5) + n[len(n)-2:]
}

// phoneNumber reports whether s is a number in E.164 form: "+" and 7 to 15
// digits.
func phoneNumber(s string) bool {
	d, ok := strings.CutPrefix(s, "+")
	if !ok || len(d) < 7 || len(d) > 15 {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ingestCall records a call durably (its CallSid in the dedupe, like any
// message id) and lets the store match it: only a validated STIR/SHAKEN
// attestation A verifies, and only the one pending call session of (called
// number, caller) — anyone can place a call with a forged caller id, and a
// call carries no code to say which session it meant. Any other call is
// outcome caller_unattested: counted and logged, no attempt, no event, no
// budget; being recorded, a later copy of it that claims attestation A (a
// captured request with StirVerstat added) is a duplicate. A call never
// tries capture codes, nor spends the sender's budgets.
func (s *Server) ingestCall(ctx context.Context, rt *reloadable, provider string, in adapters.Inbound, msg matcher.Message) error {
	out, err := s.store.Ingest(ctx, msg, matcher.IngestOptions{NoCapture: true})
	if err != nil {
		return err
	}
	outcome := out.Kind.String()
	switch {
	case out.Duplicate:
		outcome = "duplicate"
	case in.Attestation != "A":
		outcome = "caller_unattested"
		s.log.Info("call ignored: caller not attested", "provider", provider, "outcome", outcome,
			"message_id", in.MessageID, "to", in.To, "from", maskNumber(in.From), "attestation", in.Attestation)
	case out.Kind == matcher.Matched:
		rt.pool.Verified(in.To)
	default:
		s.log.Info("call matched no session", "provider", provider, "outcome", outcome,
			"message_id", in.MessageID, "to", in.To, "from", maskNumber(in.From))
	}
	s.metrics.messages.WithLabelValues(provider, outcome, in.ChannelOf()).Inc()
	return nil
}
