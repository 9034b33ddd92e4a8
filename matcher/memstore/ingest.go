package memstore

import (
	"context"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

// Ingest matches a message, once: a redelivery of the same provider message
// id returns the first outcome with Duplicate set and changes nothing. It
// returns once the outcome is durable.
func (m *Store) Ingest(ctx context.Context, msg matcher.Message, opt matcher.IngestOptions) (matcher.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Outcome{}, err
	}
	o, err := m.ingestOnce(msg, opt)
	return o, storeErr(err)
}

func (m *Store) ingestOnce(msg matcher.Message, opt matcher.IngestOptions) (matcher.Outcome, error) {
	key := seenKeyOf(msg.Provider, msg.MessageID)
	done, first, wait := m.dedupe.claim(key, m.opt.Now())
	if !first {
		return done, nil
	}
	out, err := m.ingest(&msg, opt)
	m.dedupe.release(key, out, err == nil && !out.NeedsBudget, wait, m.opt.Now())
	return out, err
}

// ingest matches a message in the order of docs/matching.md. Each step
// plans and applies its change under one shard lock, taken and released in
// the step's own function; ingest then waits for the journal.
func (m *Store) ingest(msg *matcher.Message, opt matcher.IngestOptions) (matcher.Outcome, error) {
	now := m.opt.Now().UTC()
	// With OwnFirst, a message that capture matching could reach is
	// matched only against its sender's own sessions, and otherwise left
	// untouched (IngestOptions.OwnFirst).
	ownOnly := opt.OwnFirst && !opt.NoCapture && msg.MessageChannel() != matcher.ChannelCall
	if msg.PartsRef != "" && msg.Parts > 1 {
		var whole matcher.Message
		var complete bool
		if ownOnly {
			if !m.parts.addUnlessComplete(*msg, now) {
				return matcher.Outcome{NeedsBudget: true}, nil
			}
		} else {
			whole, complete = m.parts.add(*msg, now)
		}
		partRec := Record{Op: OpPart, At: now, Provider: msg.Provider, MessageID: msg.MessageID, Part: &Part{Message: *msg}}
		if !complete {
			processed := processedRecord(msg, now)
			processed.Outcome = matcher.Outcome{Kind: matcher.PartStored}
			return processed.Outcome, m.journal(nil, partRec, processed).Wait()
		}
		// The whole message is matched under the last part's id; the part
		// records of the others are already durable.
		if err := m.journal(nil, partRec).Wait(); err != nil {
			return matcher.Outcome{}, err
		}
		msg = &whole
	}
	// The message's pair and its sender's verifications are found by
	// hashes of its number and sender: the slots of both start loading
	// now, before the locks (prefetch.go), in one call (the hashes and
	// addresses are computed inline: a call each cost more than the
	// prefetches).
	hf, ht := hashString(msg.From), fnvNumber(msg.To)
	mt := match{at: now, ns: now.UnixNano(), pair: msgPair{shard: pairShardAt(ht, msg.From), hf: hf, h: pairHashAt(ht, hf)}}
	prefetchSlots(m.shards[mt.pair.shard].byPair.homeAddr(mt.pair.h), m.senders.t.homeAddr(hf))
	mt.scan = newLazyScan(msg.Text)
	scan := &mt.scan

	// Only sessions with a route {channel, number} count. A call has no
	// code: it verifies the sender's own session, never a capture
	// session, and never counts an attempt.
	mt.ch = msg.Channel // msg.MessageChannel(), without copying msg for its value receiver
	if mt.ch == "" {
		mt.ch = matcher.ChannelSMS
	}
	call := mt.ch == matcher.ChannelCall

	// 1. The sender's own pending session on this number: the oldest of
	// the pair's sessions (one per API key) whose code the text holds.
	if c := m.verifyPair(msg, &mt); c != nil {
		scan.put() // no defer on the matching path: it costs a deferred call
		return mt.out, c.Wait()
	}
	defer scan.put()
	if ownOnly {
		return matcher.Outcome{NeedsBudget: true}, nil
	}

	// 2. A capture session on this number whose code the text offers. Every
	// message that gets here is one guess of its sender, matched or not.
	// (The whole of a multipart message has its last part's provider and
	// id: its dedupe record is the one of that part.)
	processed := processedRecord(msg, now)
	var capture matcher.Outcome
	if !opt.NoCapture && !call {
		if m.guesses.take(msg.From, now) {
			capture.CaptureTried = true
			var c Commit
			scan.scanner().CaptureCandidates(func(code []byte) bool {
				c = m.verifyCapture(msg, &mt, code)
				return c != nil
			})
			if c != nil {
				return mt.out, c.Wait()
			}
		} else {
			capture.CaptureRefused = true
		}
	}

	// 3. A wrong code from an expected sender counts an attempt on each of
	// the pair's pending sessions.
	if !call {
		if out, c := m.attempt(*msg, processed, capture); c != nil {
			return out, c.Wait()
		}
	}

	capture.Kind = matcher.Unmatched
	processed.Outcome = capture
	keys := opt.UnmatchedKeys
	if call {
		keys = nil // a call that verifies nothing is no message to tell apps of
	}
	return processed.Outcome, m.unmatched(*msg, processed, keys).Wait()
}

// processedRecord is the dedupe record of msg, processed at now, with no
// outcome yet.
func processedRecord(msg *matcher.Message, now time.Time) Record {
	return Record{Op: OpProcessed, At: now, Provider: msg.Provider, MessageID: msg.MessageID}
}

// lazyScan is a message's text, read by a Scanner on first need: a
// message that verifies its own session, on an ASCII text, needs none
// (text.ContainsInASCII reads the text in place).
type lazyScan struct {
	text  string
	s     *text.Scanner
	ascii bool // text.ASCII(text), checked once
}

// newLazyScan returns text to read; a text past ASCII is read at once, as
// every text was before, so that no shard lock is held while it is
// normalized.
func newLazyScan(t string) lazyScan {
	l := lazyScan{text: t, ascii: text.ASCII(t)}
	if !l.ascii {
		l.scanner()
	}
	return l
}

// scanner returns the text read by a Scanner, reading it the first time.
func (l *lazyScan) scanner() *text.Scanner {
	if l.s == nil {
		l.s = text.GetScanner()
		l.s.Read(l.text)
	}
	return l.s
}

// put gives the Scanner back, if the text was read.
func (l *lazyScan) put() {
	if l.s != nil {
		text.PutScanner(l.s)
	}
}

// match is what ingest works out of a message once, for the steps that
// match it: passed by one pointer (where its fields, one argument each,
// took more registers than a call has, and spilled), and holding the
// outcome of the step that verifies (no outcome returned by value through
// each call). The message is passed beside it: held in it, it would
// escape with what the records take of it (escape analysis follows no
// field).
type match struct {
	ch   string    // the message's channel (msg.MessageChannel())
	at   time.Time // when it is processed
	ns   int64     // at.UnixNano()
	pair msgPair
	scan lazyScan        // msg's text
	out  matcher.Outcome // set by verify
}

// verifyPair verifies the oldest pending session of the message's pair
// with a route {mt.ch, number} whose code the text holds (any, for a
// call), under the shards of that session, and returns the commit of the
// step (nil: no session matched), its outcome in mt.out.
func (m *Store) verifyPair(msg *matcher.Message, mt *match) Commit {
	i := mt.pair.shard
	// Under the pair's shard; a session indexed in other shards too
	// (routes on other numbers) is picked again under all of them
	// (lockPlan). A session of one route takes no plan: no closure, one
	// lock.
	held := bit(i)
	m.shards[i].mu.Lock()
	pick := m.pairPick(msg, mt)
	if need := held; pick != nil {
		need |= pick.shardsOf()
		if need != held { // its other shards, locked in order with i again
			m.shards[i].mu.Unlock()
			held = m.lockPlan(need, func() uint64 {
				if pick = m.pairPick(msg, mt); pick != nil {
					return pick.shardsOf()
				}
				return 0
			})
		}
	}
	defer m.unlockMask(held)
	if pick == nil {
		return nil
	}
	return m.verify(&m.shards[i], pick, msg, mt, false)
}

// msgPair is a message's pair, hashed once by ingest: its shard
// (pairShard), its sender's hash hf (hashString(msg.From)), which the
// sender counts use too, and the pair's hash h in the shard's pair index.
type msgPair struct {
	shard int
	hf, h uint64
}

// pairPick returns the session verifyPair verifies (nil: none), looking at
// the locked shard of the message's pair and changing nothing.
func (m *Store) pairPick(msg *matcher.Message, mt *match) *session {
	i, h, ch, scan, now := mt.pair.shard, mt.pair.h, mt.ch, &mt.scan, mt.ns
	if ch == matcher.ChannelCall {
		// A call carries no code: it proves only that the caller called
		// this number. It verifies only with a validated attestation A,
		// and only the one pending call session of the pair: with two
		// (two API keys, or concurrent creates), it cannot say which the
		// caller meant, and verifies neither.
		if msg.Attestation != "A" {
			return nil
		}
		var pick *session
		for s := m.shards[i].byPair.getWithHash(msg.To, msg.From, h); s != nil; s = s.nextOn(msg.To) {
			if now < s.expires && s.hasRouteOn(ch, msg.To) {
				if pick != nil {
					return nil
				}
				pick = s
			}
		}
		return pick
	}
	for s := m.shards[i].byPair.getWithHash(msg.To, msg.From, h); s != nil; s = s.nextOn(msg.To) {
		// The text holds the code (normalized), as text.Scanner.Contains
		// says: in place for ASCII (text.ContainsInASCII), here rather
		// than in a method of scan (one call fewer).
		if now < s.expires && s.hasRouteOn(ch, msg.To) &&
			(scan.ascii && text.ContainsInASCII(scan.text, s.normCode()) || !scan.ascii && scan.s.Contains(s.normCode())) {
			return s
		}
	}
	return nil
}

// verifyCapture verifies the pending capture session of the message's
// number whose code is code and that has a route {mt.ch, number}, under
// its shards (nil commit: none; the outcome in mt.out).
func (m *Store) verifyCapture(msg *matcher.Message, mt *match, code []byte) Commit {
	ch, ns := mt.ch, mt.ns
	i := codeShard(msg.To, code)
	var pick *session
	held := m.lockPlan(bit(i), func() uint64 {
		pick = nil
		if s := m.shards[i].byCode[msg.To][string(code)]; s != nil && ns < s.expires && s.hasRoute(ch, msg.To) {
			pick = s
			return s.shardsOf()
		}
		return 0
	})
	defer m.unlockMask(held)
	if pick == nil {
		return nil
	}
	return m.verify(&m.shards[i], pick, msg, mt, true)
}

// verify applies the verification of s by the message (or, when it
// carries a RejectReason, its failure by policy) on the locked shards of
// s, with sh one of them, and journals it with the message's dedupe
// record; the outcome goes in mt.out (capture: CaptureTried). The
// session records the message's route and signals, with the sessions
// verified for its sender under the session's API key in the 24 h before
// (counted as it is applied). The two records are built here, in verify's
// own frame, where the journal reads them (a journal other than the WAL
// copies them): stores into a local need no write barrier, which stores
// through a pointer to a caller's records took, each.
func (m *Store) verify(sh *shard, s *session, msg *matcher.Message, mt *match, capture bool) Commit {
	ch, now := mt.ch, mt.at
	out := matcher.Outcome{Kind: matcher.Matched, SessionID: sh.ids.idString(s), CaptureTried: capture}
	var recs [2]Record
	r := &recs[0]
	r.Op, r.At, r.ID, r.From, r.Provider, r.MessageID = OpVerify, now, out.SessionID, msg.From, msg.Provider, msg.MessageID
	r.Via.Channel, r.Via.To = ch, msg.To
	r.Signals.LineType, r.Signals.Carrier, r.Signals.SenderCountry = msg.LineType, msg.Carrier, msg.SenderCountry
	r.Signals.Attestation, r.Signals.Forwarded = msg.Attestation, msg.Forwarded
	if msg.RejectReason != "" {
		r.Op, r.Reason, out.Kind = OpFail, msg.RejectReason, matcher.Exhausted
		m.perform(sh, s, r, mt.ns, true, mt.pair.hf)
	} else {
		// perform's OpVerify, without its dispatch: s is pending.
		m.verified(s, r, mt.ns, true, mt.pair.hf)
		if s.notified() == matcher.NotNotified {
			sh.fresh = append(sh.fresh, s)
		}
	}
	// processedRecord(msg, now) with its outcome, written in place: the
	// Record returned by value and copied in cost ~75 instructions more.
	p := &recs[1]
	p.Op, p.At, p.Provider, p.MessageID, p.Outcome = OpProcessed, now, msg.Provider, msg.MessageID, out
	mt.out = out
	return m.journal(sh, recs[:]...)
}

// attempt counts a wrong code on every pending session of msg's pair with
// a route {channel, number} (or, at max_attempts, fails it), under their
// shards, journaled with the dedupe record. The outcome is the oldest
// session's; a nil commit means the pair has no such pending session.
func (m *Store) attempt(msg matcher.Message, processed Record, out matcher.Outcome) (matcher.Outcome, Commit) {
	i := pairShard(msg.To, msg.From)
	ch := msg.MessageChannel()
	var own []*session
	held := m.lockPlan(bit(i), func() uint64 {
		own = own[:0]
		var need uint64
		for s := m.shards[i].byPair.get(msg.To, msg.From); s != nil; s = s.nextOn(msg.To) {
			if processed.At.UnixNano() < s.expires && s.hasRoute(ch, msg.To) {
				own = append(own, s)
				need |= s.shardsOf()
			}
		}
		return need
	})
	defer m.unlockMask(held)
	if len(own) == 0 {
		return out, nil
	}
	recs := make([]Record, 0, len(own)+1)
	for _, s := range own {
		r := Record{Op: OpAttempt, At: processed.At, ID: s.idString(), From: msg.From, Provider: msg.Provider, MessageID: msg.MessageID}
		kind := matcher.Attempted
		if int(s.attempts)+1 >= int(s.maxAttempts) {
			r.Op, kind = OpFail, matcher.Exhausted
		}
		if len(recs) == 0 {
			out.Kind, out.SessionID = kind, r.ID
		}
		recs = append(recs, r)
	}
	sh := &m.shards[i]
	for j, r := range recs { // applied after the walk: a failed session leaves the chain
		m.applyTo(sh, own[j], r)
	}
	processed.Outcome = out
	return out, m.journal(sh, append(recs, processed)...)
}

// unmatched journals the dedupe record of a message that matched nothing
// and its message.unmatched events, one per key, which enter the event
// table under its lock with that journal call.
func (m *Store) unmatched(msg matcher.Message, processed Record, keys []string) Commit {
	if len(keys) == 0 {
		return m.journal(nil, processed)
	}
	recs := []Record{processed}
	evs := make([]matcher.Event, 0, len(keys))
	for _, k := range keys {
		u := &matcher.UnmatchedEvent{ID: matcher.UnmatchedEventID(msg.Provider, msg.MessageID, k), Key: k, Message: msg, At: processed.At}
		evs = append(evs, unmatchedEvent(u))
		recs = append(recs, Record{Op: OpUnmatched, At: processed.At, ID: u.ID, Unmatched: u})
	}
	t := &m.events
	t.mu.Lock()
	c := m.journal(nil, recs...)
	t.put(evs, c)
	t.mu.Unlock()
	t.signal()
	return c
}

// SpendNonce records, durably, that a provider request nonce was used, and
// reports whether it was fresh. A nonce is remembered for the retention
// window, across restarts (it is journaled and kept in snapshots like a
// processed message); of concurrent spends of one nonce exactly one is
// fresh. It guards signatures that do not cover the body (Plivo V2): such a
// signature is good for one request only.
func (m *Store) SpendNonce(ctx context.Context, provider, nonce string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	fresh, err := m.spendNonce(provider, nonce)
	return fresh, storeErr(err)
}

func (m *Store) spendNonce(provider, nonce string) (fresh bool, err error) {
	id := nonceMessageID(nonce)
	key := seenKeyOf(provider, id)
	now := m.opt.Now().UTC()
	_, first, wait := m.dedupe.claim(key, now)
	if !first {
		return false, nil
	}
	r := Record{Op: OpProcessed, At: now, Provider: provider, MessageID: id, Outcome: matcher.Outcome{Kind: matcher.NonceSpent}}
	err = m.journal(nil, r).Wait()
	m.dedupe.release(key, r.Outcome, err == nil, wait, now)
	return err == nil, err
}

// nonceMessageID keeps nonces apart from provider message ids in the
// dedupe table: no provider message id starts with a control character.
func nonceMessageID(nonce string) string { return "\x01nonce\x00" + nonce }
