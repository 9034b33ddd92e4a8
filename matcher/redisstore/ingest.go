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

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	textrules "github.com/mogate/mogate/matcher/text"
)

// partsTTL is how long an incomplete multipart message is kept.
const partsTTL = time.Hour

// outcome is an Outcome as library.lua records it.
type outcome struct {
	Kind           recordKind `json:"k"`
	SessionID      string     `json:"sid"`
	CaptureTried   bool       `json:"ct"`
	CaptureRefused bool       `json:"cr"`
	Key            string     `json:"key,omitempty"` // of the session verified
	Own            int        `json:"own,omitempty"` // a verify step's count of the sender's sessions
}

// recordKind is a record's kind and whether it has one, a value: no two
// outcomes share it. Its JSON is a *matcher.OutcomeKind's (null: none).
type recordKind struct {
	v  matcher.OutcomeKind
	ok bool
}

func (k *recordKind) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*k = recordKind{}
		return nil
	}
	if err := json.Unmarshal(b, &k.v); err != nil {
		return err
	}
	k.ok = true
	return nil
}

func (k recordKind) MarshalJSON() ([]byte, error) {
	if !k.ok {
		return []byte("null"), nil
	}
	return strconv.AppendUint(nil, uint64(k.v), 10), nil
}

// matcher is o as the matcher reports it.
func (o outcome) matcher(dup bool) matcher.Outcome {
	return matcher.Outcome{Kind: o.Kind.v, SessionID: o.SessionID, Duplicate: dup, CaptureTried: o.CaptureTried, CaptureRefused: o.CaptureRefused}
}

// ingestArgs is what the ingest function needs of a message: the text
// scanned here by the matcher's own rules. argv passes it.
type ingestArgs struct {
	Now        int64
	Retention  int64
	Provider   string
	MessageID  string
	From       string
	To         string
	Chunks     []string
	Groups     string
	Candidates []string
	NoCapture  bool
	Guesses    int
	Unmatched  int
	Events     []eventArgs
	Parts      bool

	Channel       string
	LineType      string
	Carrier       string
	SenderCountry string
	Attestation   string
	Forwarded     bool
	Reject        string
	// SenderSessions are the sender's verified sessions of the 24 h
	// before, per API key (Signals.SenderSessions24h), read by the caller
	// on Cluster; on one server ingest reads and adds them itself
	// (CountHere).
	SenderSessions map[string]int
	CountHere      bool

	// The steps of a message whose number links to other home tags
	// (library.lua ingest). Mode "first" (IngestOptions.OwnFirst) tries
	// only the sender's own sessions and records nothing they do not take;
	// in the linked steps, none comes after "own".
	Mode   string
	Spend  bool
	CT     bool
	CR     bool
	Result *outcome
	Prior  *outcome
}

// argv is a as the ingest function's ARGV: plain values, in the order
// library.lua's ingestArgs reads them, so Lua decodes no JSON for a
// message (only the rare outcomes of a linked message's steps and the
// sender counts read on Cluster).
func (a ingestArgs) argv() ([]any, error) {
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return ""
	}
	args := make([]any, 0, 30+len(a.Chunks)+len(a.Candidates)+2*len(a.Events))
	args = append(args, a.Now, a.Retention, a.Provider, a.MessageID, a.From, a.To, a.Groups, flag(a.NoCapture),
		a.Guesses, a.Unmatched, flag(a.Parts), a.Channel, a.LineType, a.Carrier, a.SenderCountry, a.Attestation,
		flag(a.Forwarded), a.Reject, flag(a.CountHere), a.Mode, flag(a.Spend), flag(a.CT), flag(a.CR))
	for _, v := range []any{a.Result, a.Prior, a.SenderSessions} {
		switch v := v.(type) {
		case *outcome:
			if v == nil {
				args = append(args, "")
				continue
			}
		case map[string]int:
			if len(v) == 0 {
				args = append(args, "")
				continue
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		args = append(args, string(b))
	}
	args = append(args, len(a.Chunks))
	for _, c := range a.Chunks {
		args = append(args, c)
	}
	args = append(args, len(a.Candidates))
	for _, c := range a.Candidates {
		args = append(args, c)
	}
	args = append(args, 2*len(a.Events))
	for _, e := range a.Events {
		args = append(args, e.Member, e.JSON)
	}
	return args, nil
}

type eventArgs struct {
	Member string
	JSON   string
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
	onCluster := s.cluster != nil
	ka := keyArgs{tag: tag, provider: msg.Provider, messageID: msg.MessageID, from: msg.From, ref: msg.PartsRef, countInTag: onCluster}
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
	// A message that capture matching could reach waits for its sender's
	// budgets with OwnFirst; so does the part that completes a message:
	// the part call above stored it (again, for the next call) but
	// recorded nothing.
	ownFirst := opt.OwnFirst && !opt.NoCapture && msg.MessageChannel() != matcher.ChannelCall
	if ownFirst && whole {
		return matcher.Outcome{NeedsBudget: true}, nil
	}
	sc := textrules.ScanText(text)
	now := s.opt.Now().UTC()
	a := ingestArgs{
		Now: ms(now), Retention: s.opt.Retention.Milliseconds(), Provider: msg.Provider, MessageID: msg.MessageID,
		From: msg.From, To: msg.To, Chunks: sc.Chunks, Groups: sc.Groups, Candidates: sc.Capture, NoCapture: opt.NoCapture,
		Guesses: s.opt.CaptureGuessesPerHour, Unmatched: s.opt.UnmatchedPerSenderPerHour, Events: []eventArgs{}, Parts: whole,
		Channel: msg.MessageChannel(), LineType: msg.LineType, Carrier: msg.Carrier, SenderCountry: msg.SenderCountry,
		Attestation: msg.Attestation, Forwarded: msg.Forwarded, Reject: msg.RejectReason,
	}
	if ownFirst {
		a.Mode = "first"
	}
	if onCluster {
		a.SenderSessions = s.senderSessions(ctx, msg.From, now)
	} else {
		a.CountHere = true
	}
	if a.Candidates == nil || ownFirst {
		// The first call never reaches capture sessions: it sends no
		// candidates (nor, below, unmatched events) for Lua to read.
		a.Candidates = []string{}
	}
	whole1 := msg
	whole1.Text, whole1.Parts, whole1.Part, whole1.PartsRef = text, 0, 0, ""
	keys := opt.UnmatchedKeys
	if msg.MessageChannel() == matcher.ChannelCall && msg.Attestation != "A" || ownFirst {
		keys = nil // an unattested call is no message to tell of; a first call records none
	}
	for _, k := range keys {
		e := matcher.UnmatchedEvent{ID: matcher.UnmatchedEventID(msg.Provider, msg.MessageID, k), Key: k, Message: whole1, At: now.Truncate(time.Millisecond)}
		b, err := json.Marshal(e)
		if err != nil {
			return matcher.Outcome{}, fmt.Errorf("redisstore: encode message.unmatched event: %w", err)
		}
		a.Events = append(a.Events, eventArgs{Member: "u:" + e.ID, JSON: string(b)})
	}
	n, rec, err := s.ingestStep(ctx, ka, a)
	if err != nil {
		return matcher.Outcome{}, err
	}
	var o outcome
	switch n {
	case 0, 1:
		o, err = decodeOutcomeRecord(rec)
	case 2:
		homes, derr := decodeTags(rec)
		if derr != nil {
			return matcher.Outcome{}, unavailable(fmt.Errorf("ingest: %w", derr))
		}
		o, n, err = s.ingestLinked(ctx, ka, a, homes)
	case 3:
		if !ownFirst {
			err = unavailable(fmt.Errorf("ingest: %w: status %d", errReplyShape, n))
		}
	default:
		err = unavailable(fmt.Errorf("ingest: %w: status %d", errReplyShape, n))
	}
	if err != nil {
		return matcher.Outcome{}, err
	}
	if n == 3 { // ownFirst: nothing recorded
		return matcher.Outcome{NeedsBudget: true}, nil
	}
	out := o.matcher(n == 1)
	if onCluster && !out.Duplicate && out.Kind == matcher.Matched && o.Key != "" {
		// The count lives in a slot of its own: a verification stands
		// without it (signals never block); later ones then count it not.
		if _, err := s.call(ctx, "count", keyArgs{from: msg.From}, o.Key+"\x00"+out.SessionID, ms(now), senderWindow.Milliseconds()); err != nil {
			s.log.Warn("redis: verification not added to its sender's count", "id", out.SessionID, "err", err)
		}
	}
	if !out.Duplicate && (out.Kind == matcher.Matched || out.Kind == matcher.Exhausted || out.Kind == matcher.Unmatched && len(a.Events) > 0) {
		s.signal()
	}
	return s.replayed(ctx, tag, out, nil)
}

// ingestStep runs the ingest function on the tag of ka: the reply's
// status (0 done, 1 duplicate, 2 linked to other tags, 3 nothing done)
// and its record (an outcome, or the tags' JSON).
func (s *Store) ingestStep(ctx context.Context, ka keyArgs, a ingestArgs) (int64, string, error) {
	args, err := a.argv()
	if err != nil {
		return 0, "", fmt.Errorf("redisstore: encode message: %w", err)
	}
	v, err := s.call(ctx, "ingest", ka, args...)
	if err != nil {
		return 0, "", err
	}
	n, rec, err := replyPair(v)
	if err != nil {
		return 0, "", unavailable(fmt.Errorf("ingest: %w", err))
	}
	j, err := replyString(rec)
	if err != nil {
		return 0, "", unavailable(fmt.Errorf("ingest: %w", err))
	}
	return n, j, nil
}

// ingestLinked matches a message whose number (the tag of ka) links to
// sessions homed in the tags homes, in steps, each one call deduplicated
// in its own tag, so a redelivery after a failed step repeats none that
// changed something: the sender's own sessions here, then in each home
// (a call first counts them in every tag: it verifies only the one);
// failing a match, capture sessions here (spending the sender's guess),
// then in each home; failing those, the attempts in each home; last, here,
// the attempts, the unmatched events and the outcome's record. It returns
// the outcome and its status (1 for a duplicate). A call's count and its
// verification are separate steps: a session created in another tag
// between them is not counted (each step still refuses two in its own tag).
func (s *Store) ingestLinked(ctx context.Context, ka keyArgs, a ingestArgs, homes []string) (outcome, int64, error) {
	step := func(ka keyArgs, a ingestArgs) (int64, outcome, error) {
		n, rec, err := s.ingestStep(ctx, ka, a)
		if err != nil {
			return 0, outcome{}, err
		}
		if n != 0 && n != 1 && n != 3 {
			return 0, outcome{}, unavailable(fmt.Errorf("ingest step %s: %w: status %d", a.Mode, errReplyShape, n))
		}
		o, err := decodeOutcomeRecord(rec)
		return n, o, err
	}
	final := func(res, prior *outcome, ct, cr bool) (outcome, int64, error) {
		f := a
		f.Mode, f.Result, f.Prior, f.CT, f.CR = "final", res, prior, ct, cr
		n, o, err := step(ka, f)
		if err == nil && n == 3 {
			err = unavailable(fmt.Errorf("ingest: %w: the final step recorded nothing", errReplyShape))
		}
		return o, n, err
	}
	here := func(mode string) (keyArgs, ingestArgs) {
		h := a
		h.Mode, h.Spend = mode, true
		return ka, h
	}
	other := func(tag, mode string, ct bool) (keyArgs, ingestArgs) {
		k := ka
		k.tag = tag
		h := a
		h.Mode, h.CT, h.Parts, h.Events = mode, ct, false, []eventArgs{}
		return k, h
	}
	matched := func(n int64, o outcome) bool {
		return n != 3 && (o.Kind.v == matcher.Matched || o.Kind.v == matcher.Exhausted)
	}
	found := func(o outcome, ct, cr bool) (outcome, int64, error) {
		r, fn, err := final(&o, nil, ct, cr)
		if err == nil && fn == 0 {
			r.Key = o.Key
		}
		return r, fn, err
	}
	ambiguous := func() (outcome, int64, error) {
		return final(&outcome{Kind: recordKind{matcher.Unmatched, true}}, nil, false, false)
	}
	call := a.Channel == matcher.ChannelCall
	if call {
		// A call carries no code: it verifies a session only when it is
		// the one it could verify, across the tags.
		n, o, err := step(here("count"))
		if err != nil || n == 1 {
			return o, n, err
		}
		total := o.Own
		for _, h := range homes {
			n, o, err := step(other(h, "count", false))
			if err != nil {
				return outcome{}, 0, err
			}
			if matched(n, o) {
				return found(o, false, false) // a delivery before verified there
			}
			total += o.Own
		}
		if total > 1 {
			return ambiguous()
		}
	}
	// The sender's own sessions first, in every tag.
	n, o, err := step(here("own"))
	if err != nil || n != 3 {
		return o, n, err
	}
	if call && o.Own > 1 {
		return ambiguous()
	}
	for _, h := range homes {
		n, o, err := step(other(h, "own", false))
		if err != nil {
			return outcome{}, 0, err
		}
		if matched(n, o) {
			return found(o, false, false)
		}
		if call && n == 3 && o.Own > 1 {
			return ambiguous()
		}
	}
	if a.Mode == "first" { // IngestOptions.OwnFirst: no step after "own"
		return outcome{}, 3, nil // the own steps that took nothing recorded nothing
	}
	// Then capture sessions: here the message spends its sender's guess.
	var ct, cr bool
	if !call && !a.NoCapture {
		n, o, err := step(here("verify"))
		if err != nil || n != 3 {
			return o, n, err
		}
		ct, cr = o.CaptureTried, o.CaptureRefused
		for _, h := range homes {
			if !ct {
				break
			}
			n, o, err := step(other(h, "verify", ct))
			if err != nil {
				return outcome{}, 0, err
			}
			if matched(n, o) {
				return found(o, ct, cr)
			}
		}
	}
	var prior *outcome
	for _, h := range homes {
		n, o, err := step(other(h, "attempt", ct))
		if err != nil {
			return outcome{}, 0, err
		}
		if n != 3 && prior == nil && (o.Kind.v == matcher.Attempted || o.Kind.v == matcher.Exhausted) {
			prior = &o
		}
	}
	return final(nil, prior, ct, cr)
}

// senderSessions reads the sessions verified for sender in the 24 h
// before now, per API key: one read, from the sender's own slot. A sender
// whose count cannot be read counts none (signals never block); the
// failure is logged.
func (s *Store) senderSessions(ctx context.Context, sender string, now time.Time) map[string]int {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	members, err := s.rdb.ZRangeByScore(ctx, s.k.verified(sender), &redis.ZRangeBy{
		Min: strconv.FormatInt(ms(now.Add(-senderWindow)), 10),
		Max: strconv.FormatInt(ms(now), 10),
	}).Result()
	if err != nil {
		s.log.Warn("redis: sender count not read", "err", err)
		return nil
	}
	var out map[string]int
	for _, m := range members {
		i := strings.LastIndexByte(m, 0)
		if i < 0 {
			continue
		}
		if out == nil {
			out = map[string]int{}
		}
		out[m[:i]]++
	}
	return out
}

// senderWindow is the window of Signals.SenderSessions24h.
const senderWindow = 24 * time.Hour

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
	o, err := decodeOutcomeRecord(j)
	if err != nil {
		return matcher.Outcome{}, err
	}
	return o.matcher(dup == 1), nil
}

// decodeOutcomeRecord reads an outcome record. A record without its kind
// is an error, never a zero outcome.
func decodeOutcomeRecord(j string) (outcome, error) {
	o, ok := scanOutcome(j)
	if !ok {
		var jo outcome // o itself stays off the heap
		if err := json.Unmarshal([]byte(j), &jo); err != nil {
			return outcome{}, unavailable(fmt.Errorf("bad outcome record: %w", err))
		}
		o = jo
	}
	if !o.Kind.ok {
		return outcome{}, unavailable(errors.New("bad outcome record: no kind"))
	}
	return o, nil
}

// scanOutcome reads an outcome record as library.lua's cjson writes it
// (no white space, no escapes, integers in plain digits) as
// json.Unmarshal would, without reflection nor allocation: the record's
// strings are slices of j. Anything else, valid or not, it leaves to
// json.Unmarshal (ok false).
func scanOutcome(j string) (o outcome, ok bool) {
	if len(j) < 2 || j[0] != '{' {
		return outcome{}, false
	}
	i := 1
	if j[i] == '}' {
		return o, i+1 == len(j)
	}
	for {
		name, n := scanString(j, i)
		if n < 0 || n >= len(j) || j[n] != ':' {
			return outcome{}, false
		}
		i = n + 1
		switch name {
		case "sid", "key":
			v, n := scanString(j, i)
			if n < 0 {
				return outcome{}, false
			}
			if name == "sid" {
				o.SessionID = v
			} else {
				o.Key = v
			}
			i = n
		case "ct", "cr":
			var b bool
			switch {
			case strings.HasPrefix(j[i:], "true"):
				b, i = true, i+4
			case strings.HasPrefix(j[i:], "false"):
				b, i = false, i+5
			default:
				return outcome{}, false
			}
			if name == "ct" {
				o.CaptureTried = b
			} else {
				o.CaptureRefused = b
			}
		case "k", "own":
			v, n := scanInt(j, i, name == "own")
			if n < 0 {
				return outcome{}, false
			}
			i = n
			if name == "own" {
				o.Own = v
			} else if v >= 0 && v <= 255 {
				o.Kind = recordKind{matcher.OutcomeKind(v), true}
			} else {
				return outcome{}, false
			}
		default:
			return outcome{}, false
		}
		if i >= len(j) {
			return outcome{}, false
		}
		switch j[i] {
		case ',':
			i++
		case '}':
			return o, i+1 == len(j)
		default:
			return outcome{}, false
		}
	}
}

// scanString reads the JSON string at j[i:] that has no escape: its text
// and the index after it, or -1.
func scanString(j string, i int) (string, int) {
	if i >= len(j) || j[i] != '"' {
		return "", -1
	}
	for k := i + 1; k < len(j); k++ {
		switch c := j[k]; {
		case c == '"':
			return j[i+1 : k], k + 1
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", -1 // escapes, control characters and UTF-8 checks: json's
		}
	}
	return "", -1
}

// scanInt reads the JSON integer at j[i:] in plain digits, without a
// leading zero, of at most 9 digits, signed if signed: its value and the
// index after it, or -1.
func scanInt(j string, i int, signed bool) (int, int) {
	neg := i < len(j) && j[i] == '-'
	if neg && !signed {
		return 0, -1 // json refuses even -0 for an unsigned field
	}
	if neg {
		i++
	}
	start, v := i, 0
	for ; i < len(j) && j[i] >= '0' && j[i] <= '9'; i++ {
		v = 10*v + int(j[i]-'0')
	}
	switch n := i - start; {
	case n == 0 || n > 9 || n > 1 && j[start] == '0':
		return 0, -1
	case i < len(j) && (j[i] == '.' || j[i] == 'e' || j[i] == 'E'):
		return 0, -1
	}
	if neg {
		v = -v
	}
	return v, i
}

// partsClaim is the field of a multipart message's parts that names the
// message id whose linked ingest claimed them (library.lua claimParts).
const partsClaim = "claim"

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
		if l[i] == partsClaim {
			continue
		}
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
