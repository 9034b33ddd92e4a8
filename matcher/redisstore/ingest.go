package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
	textrules "github.com/mogate/mogate/matcher/text"
)

// partsTTL is how long an incomplete multipart message is kept.
const partsTTL = time.Hour

// outcome is an Outcome as library.lua records it.
type outcome struct {
	Kind           *matcher.OutcomeKind `json:"k"`
	SessionID      string               `json:"sid"`
	CaptureTried   bool                 `json:"ct"`
	CaptureRefused bool                 `json:"cr"`
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
	ka := keyArgs{tag: tag, provider: msg.Provider, messageID: msg.MessageID, from: msg.From, ref: msg.PartsRef}
	text, whole := msg.Text, false
	if msg.PartsRef != "" && msg.Parts > 1 {
		v, err := s.call(ctx, "part", ka,
			msg.Part, msg.Text, msg.Parts, s.opt.Retention.Milliseconds(), partsTTL.Milliseconds())
		if err != nil {
			return matcher.Outcome{}, err
		}
		n, rest, err := replyPair(v)
		if err != nil {
			return matcher.Outcome{}, unavailable(fmt.Errorf("part: %w", err))
		}
		if n != 2 {
			o, err := decodeOutcome(n, rest)
			return s.replayed(ctx, tag, o, err)
		}
		if text, err = assemble(rest); err != nil {
			return matcher.Outcome{}, unavailable(fmt.Errorf("part: %w", err))
		}
		whole = true
	}
	sc := textrules.ScanText(text)
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
		b, err := json.Marshal(e)
		if err != nil {
			return matcher.Outcome{}, fmt.Errorf("redisstore: encode message.unmatched event: %w", err)
		}
		a.Events = append(a.Events, eventArgs{Member: "u:" + e.ID, JSON: string(b)})
	}
	b, err := json.Marshal(a)
	if err != nil {
		return matcher.Outcome{}, fmt.Errorf("redisstore: encode message: %w", err)
	}
	v, err := s.call(ctx, "ingest", ka, string(b))
	if err != nil {
		return matcher.Outcome{}, err
	}
	dup, rec, err := replyPair(v)
	if err != nil {
		return matcher.Outcome{}, unavailable(fmt.Errorf("ingest: %w", err))
	}
	o, err := decodeOutcome(dup, rec)
	if err == nil && !o.Duplicate && (o.Kind == matcher.Matched || o.Kind == matcher.Exhausted || o.Kind == matcher.Unmatched && len(a.Events) > 0) {
		s.signal()
	}
	return s.replayed(ctx, tag, o, err)
}

// replayed passes an ingest's outcome on; a duplicate (the function wrote
// nothing for its WAIT to count) only once confirm has the replicas hold
// what it reports.
func (s *Store) replayed(ctx context.Context, tag string, o matcher.Outcome, err error) (matcher.Outcome, error) {
	if err == nil && o.Duplicate {
		if err := s.confirm(ctx, tag); err != nil {
			return matcher.Outcome{}, err
		}
	}
	return o, err
}

// decodeOutcome reads an outcome record; dup is 1 when the message was
// seen before. A record without its kind is an error, never a zero
// outcome.
func decodeOutcome(dup int64, rec any) (matcher.Outcome, error) {
	j, err := replyString(rec)
	if err != nil {
		return matcher.Outcome{}, unavailable(fmt.Errorf("outcome record: %w", err))
	}
	var o outcome
	if err := json.Unmarshal([]byte(j), &o); err != nil {
		return matcher.Outcome{}, unavailable(fmt.Errorf("bad outcome record: %w", err))
	}
	if o.Kind == nil {
		return matcher.Outcome{}, unavailable(errors.New("bad outcome record: no kind"))
	}
	return matcher.Outcome{Kind: *o.Kind, SessionID: o.SessionID, Duplicate: dup == 1, CaptureTried: o.CaptureTried, CaptureRefused: o.CaptureRefused}, nil
}

// assemble joins the parts of HGETALL (part number, text, ...) in order.
func assemble(v any) (string, error) {
	l, err := replyStrings(v, -1)
	if err != nil {
		return "", err
	}
	if len(l)%2 != 0 {
		return "", fmt.Errorf("%w: %d elements, want pairs", errReplyShape, len(l))
	}
	type part struct {
		n    int
		text string
	}
	ps := make([]part, 0, len(l)/2)
	for i := 0; i < len(l); i += 2 {
		n, err := strconv.Atoi(l[i])
		if err != nil {
			return "", fmt.Errorf("%w: part number %q", errReplyShape, l[i])
		}
		ps = append(ps, part{n, l[i+1]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].n < ps[j].n })
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.text)
	}
	return b.String(), nil
}
