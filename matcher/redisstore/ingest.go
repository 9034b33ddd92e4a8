package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
)

// partsTTL is how long an incomplete multipart message is kept.
const partsTTL = time.Hour

// outcome is an Outcome as library.lua records it.
type outcome struct {
	Kind           matcher.OutcomeKind `json:"k"`
	SessionID      string              `json:"sid"`
	CaptureTried   bool                `json:"ct"`
	CaptureRefused bool                `json:"cr"`
}

// ingestArgs is what the ingest function needs of a message: the text
// scanned here by the matcher's own rules.
type ingestArgs struct {
	Now        int64       `json:"now"`
	Retention  int64       `json:"ret"`
	Provider   string      `json:"pv"`
	MessageID  string      `json:"mid"`
	From       string      `json:"from"`
	To         string      `json:"to"`
	Chunks     []string    `json:"chunks"`
	Groups     string      `json:"groups"`
	Candidates []string    `json:"cands"`
	NoCapture  bool        `json:"nocap"`
	Guesses    int         `json:"gph"`
	Unmatched  int         `json:"uph"`
	Events     []eventArgs `json:"uevs"`
	Parts      bool        `json:"parts"`
}

type eventArgs struct {
	Member string `json:"m"`
	JSON   string `json:"j"`
}

// Ingest matches a message once per (provider, message id) in one function
// call: dedupe, the sender's own sessions, capture sessions with the
// sender's guess budget, attempts and failure, message.unmatched events.
// A part of a multipart message is stored by one call; the part that
// completes it makes a second call, for the whole text.
func (s *Store) Ingest(ctx context.Context, msg matcher.Message, opt matcher.IngestOptions) (matcher.Outcome, error) {
	tag := tagOf(msg.To)
	if err := s.register(ctx, tag); err != nil {
		return matcher.Outcome{}, err
	}
	dedupe := s.k.key(tag, "d:"+msg.Provider+"\x00"+msg.MessageID)
	parts := s.k.key(tag, "mp:"+msg.Provider+"\x00"+msg.From+"\x00"+msg.PartsRef)
	text, whole := msg.Text, false
	if msg.PartsRef != "" && msg.Parts > 1 {
		v, err := s.call(ctx, "part", []string{dedupe, parts},
			msg.Part, msg.Text, msg.Parts, s.opt.Retention.Milliseconds(), partsTTL.Milliseconds())
		if err != nil {
			return matcher.Outcome{}, err
		}
		l, _ := v.([]any)
		if len(l) != 2 {
			return matcher.Outcome{}, unavailable(fmt.Errorf("unexpected part reply %v", v))
		}
		if n, _ := l[0].(int64); n != 2 {
			return decodeOutcome(l[0], l[1])
		}
		text, whole = assemble(l[1]), true
	}
	sc := matcher.ScanText(text)
	now := s.opt.Now().UTC()
	a := ingestArgs{
		Now: ms(now), Retention: s.opt.Retention.Milliseconds(), Provider: msg.Provider, MessageID: msg.MessageID,
		From: msg.From, To: msg.To, Chunks: sc.Chunks, Groups: sc.Groups, Candidates: sc.Capture, NoCapture: opt.NoCapture,
		Guesses: s.opt.CaptureGuessesPerHour, Unmatched: s.opt.UnmatchedPerSenderPerHour, Events: []eventArgs{}, Parts: whole,
	}
	if a.Candidates == nil {
		a.Candidates = []string{}
	}
	whole1 := msg
	whole1.Text, whole1.Parts, whole1.Part, whole1.PartsRef = text, 0, 0, ""
	for _, k := range opt.UnmatchedKeys {
		e := matcher.UnmatchedEvent{ID: matcher.UnmatchedEventID(msg.Provider, msg.MessageID, k), Key: k, Message: whole1, At: now.Truncate(time.Millisecond)}
		b, _ := json.Marshal(e)
		a.Events = append(a.Events, eventArgs{Member: "u:" + e.ID, JSON: string(b)})
	}
	b, _ := json.Marshal(a)
	keys := s.k.tagKeys(tag, dedupe, s.k.key(tag, "g:"+msg.From), s.k.key(tag, "u:"+msg.From), parts)
	v, err := s.call(ctx, "ingest", keys, string(b))
	if err != nil {
		return matcher.Outcome{}, err
	}
	l, _ := v.([]any)
	if len(l) != 2 {
		return matcher.Outcome{}, unavailable(fmt.Errorf("unexpected ingest reply %v", v))
	}
	o, err := decodeOutcome(l[0], l[1])
	if err == nil && !o.Duplicate && (o.Kind == matcher.Matched || o.Kind == matcher.Exhausted || o.Kind == matcher.Unmatched && len(a.Events) > 0) {
		s.signal()
	}
	return o, err
}

func decodeOutcome(dup, j any) (matcher.Outcome, error) {
	str, _ := j.(string)
	var o outcome
	if err := json.Unmarshal([]byte(str), &o); err != nil {
		return matcher.Outcome{}, unavailable(fmt.Errorf("bad outcome record: %w", err))
	}
	d, _ := dup.(int64)
	return matcher.Outcome{Kind: o.Kind, SessionID: o.SessionID, Duplicate: d == 1, CaptureTried: o.CaptureTried, CaptureRefused: o.CaptureRefused}, nil
}

// assemble joins the parts of HGETALL (part number, text, ...) in order.
func assemble(v any) string {
	l, _ := v.([]any)
	type part struct {
		n    int
		text string
	}
	var ps []part
	for i := 0; i+1 < len(l); i += 2 {
		ns, _ := l[i].(string)
		text, _ := l[i+1].(string)
		n, _ := strconv.Atoi(ns)
		ps = append(ps, part{n, text})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].n < ps[j].n })
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.text)
	}
	return b.String()
}
