package matcher

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mogate/mogate/matcher/text"
)

// Message is an inbound SMS as the matcher sees it: numbers in E.164.
type Message struct {
	Provider, MessageID string
	From, To, Text      string
	// Parts, Part and PartsRef describe one part of a message delivered in
	// pieces; Parts <= 1 or PartsRef == "" means a whole message.
	Parts, Part int
	PartsRef    string
}

// OutcomeKind says what a message did.
type OutcomeKind uint8

// Outcomes of Ingest.
const (
	Unmatched  OutcomeKind = iota // matched nothing
	Matched                       // verified SessionID
	Attempted                     // a wrong code from SessionID's expected sender
	Exhausted                     // that wrong code was the last allowed: SessionID failed
	PartStored                    // one part of a multipart message, kept until all arrive
	NonceSpent                    // not a message: a provider request nonce (SpendNonce)
)

var outcomeNames = [...]string{"unmatched", "verified", "attempt", "failed", "part", "nonce"}

func (k OutcomeKind) String() string { return outcomeNames[k] }

// Outcome is the result of ingesting a message.
type Outcome struct {
	Kind      OutcomeKind
	SessionID string
	// Duplicate is true when the provider message was already processed;
	// the outcome is the one of the first delivery and nothing changed.
	Duplicate bool
	// CaptureTried is true when the message was tried against capture
	// sessions, and so spent one of its sender's capture guesses;
	// CaptureRefused when the sender had none left.
	CaptureTried, CaptureRefused bool
}

// IngestOptions tune one Ingest call.
type IngestOptions struct {
	// NoCapture skips capture sessions: the sender has sent too many
	// unmatched messages, and could be guessing codes.
	NoCapture bool
	// UnmatchedKeys are the API keys told of the message, should it match
	// nothing (a message.unmatched event each, journaled with the outcome).
	UnmatchedKeys []string
}

// Ingest matches a message, once: a redelivery of the same provider message
// id returns the first outcome with Duplicate set and changes nothing. It
// returns once the outcome is durable.
func (m *Matcher) Ingest(msg Message, opt IngestOptions) (Outcome, error) {
	key := seenKeyOf(msg.Provider, msg.MessageID)
	done, first, wait := m.dedupe.claim(key, m.opt.Now())
	if !first {
		return done, nil
	}
	out, err := m.ingest(msg, opt)
	m.dedupe.release(key, out, err == nil, wait, m.opt.Now())
	return out, err
}

func (m *Matcher) ingest(msg Message, opt IngestOptions) (Outcome, error) {
	now := m.opt.Now().UTC()
	processed := Record{Op: OpProcessed, At: now, Provider: msg.Provider, MessageID: msg.MessageID}
	if msg.PartsRef != "" && msg.Parts > 1 {
		whole, complete := m.parts.add(msg, now)
		partRec := Record{Op: OpPart, At: now, Provider: msg.Provider, MessageID: msg.MessageID, Part: &Part{Message: msg}}
		if !complete {
			processed.Outcome = Outcome{Kind: PartStored}
			return processed.Outcome, m.journal(partRec, processed).Wait()
		}
		// The whole message is matched under the last part's id; the part
		// records of the others are already durable.
		if err := m.journal(partRec).Wait(); err != nil {
			return Outcome{}, err
		}
		msg = whole
	}
	scan := text.GetScanner()
	defer text.PutScanner(scan)
	scan.Read(msg.Text)

	nowNS := now.UnixNano()

	// 1. The sender's own pending session on this number: the oldest of
	// the pair's sessions (one per API key) whose code the text holds.
	pi := pairShard(msg.To, msg.From)
	sh := &m.shards[pi]
	sh.mu.Lock()
	for s := sh.byPair[pairKey{msg.To, msg.From}]; s != nil; s = pairNext(s) {
		if nowNS < s.expires && scan.Contains(s.norm) {
			id := s.idString()
			r := Record{Op: OpVerify, At: now, ID: id, From: msg.From, Provider: msg.Provider, MessageID: msg.MessageID}
			return m.commit(sh, s, r, processed, Outcome{Kind: Matched, SessionID: id})
		}
	}
	sh.mu.Unlock()

	// 2. A capture session on this number whose code the text offers. Every
	// message that gets here is one guess of its sender, matched or not.
	var capture Outcome
	if !opt.NoCapture {
		if m.guesses.take(msg.From, now) {
			capture.CaptureTried = true
			var out Outcome
			var err error
			hit := false
			scan.CaptureCandidates(func(c []byte) bool {
				sh := &m.shards[codeShard(msg.To, c)]
				sh.mu.Lock()
				if s := sh.byCode[msg.To][string(c)]; s != nil && nowNS < s.expires {
					id := s.idString()
					r := Record{Op: OpVerify, At: now, ID: id, From: msg.From, Provider: msg.Provider, MessageID: msg.MessageID}
					out, err = m.commit(sh, s, r, processed, Outcome{Kind: Matched, SessionID: id, CaptureTried: true})
					hit = true
					return true
				}
				sh.mu.Unlock()
				return false
			})
			if hit {
				return out, err
			}
		} else {
			capture.CaptureRefused = true
		}
	}

	// 3. A wrong code from an expected sender counts an attempt on each of
	// the pair's pending sessions.
	sh.mu.Lock()
	if recs, out := m.attempts(sh, msg, now, capture); len(recs) > 0 {
		return m.commitAll(sh, recs, processed, out)
	}
	sh.mu.Unlock()

	capture.Kind = Unmatched
	processed.Outcome = capture
	if len(opt.UnmatchedKeys) == 0 {
		return processed.Outcome, m.journal(processed).Wait()
	}
	recs := []Record{processed}
	var events []UnmatchedEvent
	m.unmatched.mu.Lock()
	for _, k := range opt.UnmatchedKeys {
		e := UnmatchedEvent{ID: UnmatchedEventID(msg.Provider, msg.MessageID, k), Key: k, Message: msg, At: now}
		m.unmatched.m[e.ID] = e
		events = append(events, e)
		recs = append(recs, Record{Op: OpUnmatched, At: now, ID: e.ID, Unmatched: &events[len(events)-1]})
	}
	c := m.journal(recs...)
	m.unmatched.mu.Unlock()
	if err := c.Wait(); err != nil {
		return Outcome{}, err
	}
	if l := m.outbox.Load(); l != nil {
		l.unmatched(events)
	}
	if m.opt.OnUnmatched != nil {
		for _, e := range events {
			m.opt.OnUnmatched(e)
		}
	}
	return processed.Outcome, nil
}

// unmatchedEvents holds message.unmatched events until they are delivered.
type unmatchedEvents struct {
	mu sync.Mutex
	m  map[string]UnmatchedEvent
}

// PendingUnmatched returns the message.unmatched events not yet delivered.
func (m *Matcher) PendingUnmatched() []UnmatchedEvent {
	m.unmatched.mu.Lock()
	defer m.unmatched.mu.Unlock()
	out := make([]UnmatchedEvent, 0, len(m.unmatched.m))
	for _, e := range m.unmatched.m {
		out = append(out, e)
	}
	return out
}

// MarkUnmatchedDone records, durably, that a message.unmatched event was
// delivered (or, with dead, given up on).
func (m *Matcher) MarkUnmatchedDone(id string, dead bool) error {
	r := Record{Op: OpDelivered, At: m.opt.Now().UTC(), ID: id}
	if dead {
		r.Op = OpDead
	}
	m.unmatched.mu.Lock()
	if _, ok := m.unmatched.m[id]; !ok {
		m.unmatched.mu.Unlock()
		return ErrNotFound
	}
	delete(m.unmatched.m, id)
	c := m.journal(r)
	m.unmatched.mu.Unlock()
	return c.Wait()
}

// attempts returns the attempt (or, at max_attempts, fail) records of every
// pending session of msg's pair on the locked shard sh, and the outcome: the
// oldest session's.
func (m *Matcher) attempts(sh *shard, msg Message, now time.Time, out Outcome) ([]Record, Outcome) {
	var recs []Record
	for s := sh.byPair[pairKey{msg.To, msg.From}]; s != nil; s = pairNext(s) {
		if now.UnixNano() >= s.expires {
			continue
		}
		r := Record{Op: OpAttempt, At: now, ID: s.idString(), From: msg.From, Provider: msg.Provider, MessageID: msg.MessageID}
		kind := Attempted
		if int(s.attempts)+1 >= int(s.maxAttempts) {
			r.Op, kind = OpFail, Exhausted
		}
		if len(recs) == 0 {
			out.Kind, out.SessionID = kind, r.ID
		}
		recs = append(recs, r)
	}
	return recs, out
}

// commitAll applies recs (each on its own session of the locked shard sh)
// with the dedupe record, unlocks the shard and waits for durability.
func (m *Matcher) commitAll(sh *shard, recs []Record, processed Record, out Outcome) (Outcome, error) {
	processed.Outcome = out
	var final []Session
	for _, r := range recs {
		_, raw, _ := parseID(r.ID)
		s := sh.byID[raw]
		m.applyTo(sh, s, r)
		if s.status.Final() {
			final = append(final, s.view())
		}
	}
	c := m.journal(append(recs, processed)...)
	sh.mu.Unlock()
	if err := c.Wait(); err != nil {
		return Outcome{}, err
	}
	m.notify(final)
	return out, nil
}

// commit applies r with the dedupe record on the locked shard, unlocks it
// and waits for durability.
func (m *Matcher) commit(sh *shard, s *session, r, processed Record, out Outcome) (Outcome, error) {
	processed.Outcome = out
	m.applyTo(sh, s, r)
	c := m.journal(r, processed)
	var snap Session
	notify := (m.opt.OnChange != nil || m.outbox.Load() != nil) && s.status.Final()
	if notify {
		snap = s.view()
	}
	sh.mu.Unlock()
	if err := c.Wait(); err != nil {
		return Outcome{}, err
	}
	if notify {
		m.notifyOne(snap)
	}
	return processed.Outcome, nil
}

// Part is one stored part of a multipart message.
type Part struct{ Message Message }

// partials holds multipart messages until all their parts arrive.
type partials struct {
	mu sync.Mutex
	m  map[string]*partial
}

type partial struct {
	first time.Time
	parts map[int]Message
}

// partsTTL is how long an incomplete multipart message is kept.
const partsTTL = time.Hour

func (p *partials) add(msg Message, now time.Time) (Message, bool) {
	key := strings.Join([]string{msg.Provider, msg.To, msg.From, msg.PartsRef}, "\x00")
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[key]
	if e == nil {
		e = &partial{first: now, parts: map[int]Message{}}
		p.m[key] = e
	}
	e.parts[msg.Part] = msg
	if len(e.parts) < msg.Parts {
		return Message{}, false
	}
	delete(p.m, key)
	nums := make([]int, 0, len(e.parts))
	for n := range e.parts {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	var b strings.Builder
	for _, n := range nums {
		b.WriteString(e.parts[n].Text)
	}
	whole := msg
	whole.Text, whole.Parts, whole.Part, whole.PartsRef = b.String(), 0, 0, ""
	return whole, true
}

func (p *partials) gc(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, e := range p.m {
		if now.Sub(e.first) > partsTTL {
			delete(p.m, k)
		}
	}
}

// SpendNonce records, durably, that a provider request nonce was used, and
// reports whether it was fresh. A nonce is remembered for the retention
// window, across restarts (it is journaled and kept in snapshots like a
// processed message); of concurrent spends of one nonce exactly one is
// fresh. It guards signatures that do not cover the body (Plivo V2): such a
// signature is good for one request only.
func (m *Matcher) SpendNonce(provider, nonce string) (fresh bool, err error) {
	id := nonceMessageID(nonce)
	key := seenKeyOf(provider, id)
	now := m.opt.Now().UTC()
	_, first, wait := m.dedupe.claim(key, now)
	if !first {
		return false, nil
	}
	r := Record{Op: OpProcessed, At: now, Provider: provider, MessageID: id, Outcome: Outcome{Kind: NonceSpent}}
	err = m.journal(r).Wait()
	m.dedupe.release(key, r.Outcome, err == nil, wait, now)
	return err == nil, err
}

// nonceMessageID keeps nonces apart from provider message ids in the
// dedupe table: no provider message id starts with a control character.
func nonceMessageID(nonce string) string { return "\x01nonce\x00" + nonce }
