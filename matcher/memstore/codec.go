package memstore

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

// Record payload (inside a WAL frame), version 2:
//
//	u8 format version (2) | u8 op | varint at (unix ns) | op fields
//
// Strings and byte slices are a uvarint length then the bytes; integers are
// uvarints; times are varint unix nanoseconds (0 for the zero time).
//
//	OpCreate                     session
//	OpAttempt, OpFail, OpVerify  id, from, provider, message id, proof
//	OpCancel                     id, reason
//	OpExpire, OpDelivered, OpDead id
//	OpProcessed                  provider, message id, outcome kind (u8), outcome session id
//	OpPart                       message
//	OpUnmatched                  event id, API key name, message
//
// session: id, key, api, number, code, to, country, language, callback,
// redirect, metadata, page token, idempotency key, request hash,
// max attempts, created, expires, status (u8), attempts, verified number,
// finished, provider, message id, reason, notified (u8), routes (uvarint
// n, n times channel and number; 0: the one route {sms, to}), client
// country, proof.
//
// proof: the route of the message (channel, number), its signals (line
// type, carrier, sender country, attestation, forwarded u8, sender
// sessions in 24 h), and the reason of a failure by policy.
//
// message: provider, message id, from, to, text, parts, part, ref,
// channel, line type, carrier, sender country, attestation, forwarded
// (u8), reject reason.
//
// Version 1, still read, ends the session after notified, the attempt,
// failure and verification after the message id, and the message after
// ref: a session of version 1 has the one route {sms, to}.

const codecVersion = 2

// errDecode is returned for a payload that does not decode.
var errDecode = errors.New("matcher: undecodable record")

type enc struct{ b []byte }

func (e *enc) u8(v uint8)     { e.b = append(e.b, v) }
func (e *enc) uv(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string)   { e.uv(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(b []byte) { e.uv(uint64(len(b))); e.b = append(e.b, b...) }
func (e *enc) varint(v int64) { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.b = binary.AppendVarint(e.b, 0)
		return
	}
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errDecode
	}
	d.b = nil
}

func (d *dec) u8() uint8 {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// uv reads a uvarint. Most are lengths under 128, one byte: read inline
// (a snapshot's session has some thirty).
func (d *dec) uv() uint64 {
	if b := d.b; len(b) > 0 && b[0] < 0x80 {
		d.b = b[1:]
		return uint64(b[0])
	}
	return d.uvLong()
}

// uvLong is uv of a uvarint of any length.
func (d *dec) uvLong() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) int() int {
	v := d.uv()
	if v > 1<<31 {
		d.fail()
		return 0
	}
	return int(v)
}

func (d *dec) raw() []byte {
	// A length under 128 (one byte), whose bytes are there: read inline.
	if b := d.b; len(b) > 0 && b[0] < 0x80 && int(b[0]) < len(b) {
		n := 1 + int(b[0])
		d.b = b[n:]
		return b[1:n:n]
	}
	return d.rawLong()
}

// rawLong is raw of any length, or failing.
func (d *dec) rawLong() []byte {
	n := d.uv()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

// fixed reads n bytes with no length prefix.
func (d *dec) fixed(n int) []byte {
	if n > len(d.b) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	r := d.raw()
	if len(r) == 0 {
		return nil
	}
	return append([]byte(nil), r...)
}

func (d *dec) time() time.Time {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return time.Time{}
	}
	d.b = d.b[n:]
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, v).UTC()
}

// compact encodes an in-memory session in the session format above: the
// one session codec, of OpCreate records and of snapshots alike.
func (e *enc) compact(s *session) {
	x := s.x
	if x == nil {
		x = &sessionExtra{}
	}
	l := s.labelSet()
	e.id(idPrefixes[s.prefix()], &s.id)
	for _, v := range []string{s.key, l.api, s.number, s.code, s.to, l.country, l.language, x.callback, x.redirect} {
		e.str(v)
	}
	e.bytes(x.metadata)
	e.id(tokenPrefix, &s.token)
	for _, v := range []string{x.idemKey, x.reqHash} {
		e.str(v)
	}
	e.uv(uint64(s.maxAttempts))
	e.b = binary.AppendVarint(e.b, s.created)
	e.b = binary.AppendVarint(e.b, s.expires)
	e.u8(uint8(s.status))
	e.uv(uint64(s.attempts))
	verified := x.verifiedNumber
	if verified == "" && s.status == matcher.Verified {
		verified = s.number
	}
	e.str(verified)
	e.b = binary.AppendVarint(e.b, s.finished)
	e.str(s.providerName())
	e.str(s.messageID)
	e.str(reasons[s.reason()])
	e.u8(uint8(s.notified()))
	e.uv(uint64(len(x.routes)))
	for _, r := range x.routes {
		e.str(r.Channel)
		e.str(r.To)
	}
	e.str(x.clientCountry)
	var p proof
	if s.proof != nil {
		p = *s.proof
	}
	e.proof(p.via, p.signals, "")
}

// id encodes prefix followed by raw id id as a string, as str encodes
// renderID's: rendered in place (encodeRaw), with no string made for it,
// which took two allocations a session, of every OpCreate record and of
// every session of every snapshot.
func (e *enc) id(prefix string, id *[16]byte) {
	e.uv(uint64(len(prefix) + 26))
	e.b = append(e.b, prefix...)
	n := len(e.b)
	e.b = slices.Grow(e.b, 26)[:n+26]
	encodeRaw((*[26]byte)(e.b[n:]), id)
}

// proof encodes what a message told of its route and sender.
func (e *enc) proof(via matcher.Route, sig matcher.Signals, reason string) {
	for _, v := range []string{via.Channel, via.To, sig.LineType, sig.Carrier, sig.SenderCountry, sig.Attestation} {
		e.str(v)
	}
	e.u8(b2u(sig.Forwarded))
	e.uv(uint64(max(sig.SenderSessions24h, 0)))
	e.str(reason)
}

func (d *dec) proof() (via matcher.Route, sig matcher.Signals, reason string) {
	return d.proofWith((*interner)(nil).str)
}

// proofWith is proof with the strings made by intern: a recovered session's
// proof is looked up in proofs, and mostly found there.
func (d *dec) proofWith(intern func([]byte) string) (via matcher.Route, sig matcher.Signals, reason string) {
	via.Channel, via.To = intern(d.raw()), intern(d.raw())
	sig.LineType, sig.Carrier, sig.SenderCountry, sig.Attestation = intern(d.raw()), intern(d.raw()), intern(d.raw()), intern(d.raw())
	sig.Forwarded = d.bool()
	sig.SenderSessions24h = d.int()
	reason = d.str()
	return via, sig, reason
}

// sessionProof decodes a session's proof (which has no reason) as its
// shared copy, nil for none. An encoding that in has met before gives the
// proof it gave then, found by a hash of its bytes and compared byte for
// byte, not decoded: a recovery's verified sessions carry a few proofs
// (a deployment's numbers, carriers, line types), and decoding each took
// six strings interned and the proof table looked up.
func (d *dec) sessionProof(in *interner) *proof {
	if in == nil {
		return d.decodeSessionProof(nil)
	}
	n := proofLen(d.b)
	if n < 0 {
		return d.decodeSessionProof(in) // it fails there
	}
	enc := d.b[:n:n]
	slot := &in.proofs[maphash.Bytes(hashSeed, enc)%uint64(len(in.proofs))]
	if slot.enc != nil && string(slot.enc) == string(enc) {
		d.b = d.b[n:]
		return slot.p
	}
	start := len(d.b)
	p := d.decodeSessionProof(in)
	if d.err == nil && start-len(d.b) == n {
		*slot = proofSpan{enc: enc, p: p}
	}
	return p
}

// decodeSessionProof is sessionProof decoded.
func (d *dec) decodeSessionProof(in *interner) *proof {
	var p proof
	var reason string
	p.via, p.signals, reason = d.proofWith(in.str)
	if reason != "" {
		d.fail()
	}
	if d.err != nil {
		return nil
	}
	return sharedProof(&p)
}

// proofLen returns the length of the proof encoded at the start of b (its
// six strings, forwarded, the count, the reason), or -1 if b does not
// hold one.
func proofLen(b []byte) int {
	n := 0
	for field := range 9 {
		if n >= len(b) {
			return -1
		}
		v, k := binary.Uvarint(b[n:])
		switch {
		case k <= 0:
			return -1
		case field == 6 || field == 7: // forwarded (one byte), the count
			n += k
		case v > uint64(len(b)-n-k):
			return -1
		default: // a string: its length and its bytes
			n += k + int(v)
		}
	}
	return n
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (d *dec) bool() bool {
	switch d.u8() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail()
	return false
}

// compact decodes a session of codec version v straight into its
// in-memory form; in, a recovery worker's, shares the strings that repeat
// across sessions (with no string made for one it already holds) and the
// proofs; with in nil (a record) every string is the session's own.
func (d *dec) compact(in *interner, v uint8) *session {
	intern := in.str
	s := &session{}
	var ok bool
	var x sessionExtra // copied to the heap only when set
	var id, tok, number, code, messageID []byte
	id = d.raw()
	s.key = intern(d.raw())
	var l labelSet
	l.api = intern(d.raw())
	number = d.raw()
	code = d.raw()
	s.to = intern(d.raw())
	l.country = intern(d.raw())
	l.language = intern(d.raw())
	x.callback = d.str()
	x.redirect = d.str()
	x.metadata = d.bytes()
	tok = d.raw()
	x.idemKey = d.str()
	x.reqHash = d.str()
	max := d.uv()
	s.created = d.varint()
	s.expires = d.varint()
	s.status = matcher.Status(d.u8())
	att := d.uv()
	verified := d.raw()
	s.finished = d.varint()
	provider := d.raw()
	messageID = d.raw()
	reason := reasonCode(s.status, string(d.raw()))
	notified := matcher.Notified(d.u8())
	if string(verified) != string(number) {
		x.verifiedNumber = string(verified)
	}
	var routes []matcher.Route
	if v >= 2 {
		n := d.uv()
		if n > uint64(len(d.b)) { // each route takes two bytes at least
			d.fail()
		}
		if n > 0 { // a session has a few routes (one per channel); a larger n grows as it decodes
			routes = make([]matcher.Route, 0, min(n, 4))
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			// Channels and numbers repeat across sessions: shared.
			routes = append(routes, matcher.Route{Channel: intern(d.raw()), To: intern(d.raw())})
		}
		x.clientCountry = intern(d.raw())
		s.proof = d.sessionProof(in)
	}
	if d.err != nil {
		return nil
	}
	if len(routes) > 0 && routes[0].To != s.to {
		d.fail()
		return nil
	}
	for i, r := range routes {
		if !matcher.ValidChannel(r.Channel) || r.To == "" || slices.Contains(routes[:i], r) {
			d.fail()
			return nil
		}
	}
	var prefix uint8
	if prefix, s.id, ok = parseID(string(id)); !ok {
		d.fail()
	}
	s.pr = prefix<<6 | uint8(notified&3)<<4 | reason
	if s.token, ok = parseToken(string(tok)); !ok {
		d.fail()
	}
	if s.status > matcher.Failed || notified > matcher.Dead || max > 1<<16-1 || att > 1<<16-1 {
		d.fail()
	}
	s.maxAttempts, s.attempts = uint16(max), uint16(att)
	if d.err != nil {
		return nil // a corrupt record adds nothing to the shared tables
	}
	s.number, s.code, s.messageID = ownStrings(number, code, messageID)
	if norm, _ := text.NormalizeCode(s.code); norm != s.code {
		x.norm, x.normSet = norm, true
	}
	if s.provider = indexBytes(providers, provider); s.provider == tableInX {
		x.provider = string(provider)
	}
	if s.labels = labelSets.index(l); s.labels == tableInX {
		x.labels = l
	}
	if x.provider != "" || x.normSet || x.labels != (labelSet{}) || x.callback != "" || x.redirect != "" || len(x.metadata) > 0 ||
		x.idemKey != "" || x.reqHash != "" || x.verifiedNumber != "" || x.clientCountry != "" {
		s.x = new(sessionExtra)
		*s.x = x
	}
	s.setRoutes(routes) // interned above
	return s
}

// ownStrings returns a session's own strings, a, b and c, made in one
// allocation, which they share for as long as the session holds any of
// them: recovery made one each, 3.4M of the 4.8M allocations of a
// 1M-session day.
func ownStrings(a, b, c []byte) (string, string, string) {
	// A builder grown to the size hands over its bytes as the string: one
	// allocation whatever the length (a buffer on the stack took two past
	// 64 bytes, as a WhatsApp message id makes them).
	var all strings.Builder
	all.Grow(len(a) + len(b) + len(c))
	all.Write(a)
	all.Write(b)
	all.Write(c)
	s := all.String()
	i, j := len(a), len(a)+len(b)
	return s[:i], s[i:j], s[j:]
}

func (d *dec) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// encodeRecord appends r's payload to dst.
func encodeRecord(dst []byte, r *Record) []byte {
	e := enc{b: dst}
	e.u8(codecVersion)
	e.u8(uint8(r.Op))
	e.time(r.At)
	switch r.Op {
	case OpCreate:
		s := r.sess
		if s == nil {
			var ok bool
			if s, ok = fromView(r.Session); !ok {
				s = &session{} // never: Create makes only sessions fromView takes
			}
		}
		e.compact(s)
	case OpAttempt, OpFail, OpVerify:
		e.str(r.ID)
		e.str(r.From)
		e.str(r.Provider)
		e.str(r.MessageID)
		e.proof(r.Via, r.Signals, r.Reason)
	case OpCancel:
		e.str(r.ID)
		e.str(r.Reason)
	case OpExpire, OpDelivered, OpDead:
		e.str(r.ID)
	case OpProcessed:
		e.str(r.Provider)
		e.str(r.MessageID)
		e.u8(uint8(r.Outcome.Kind))
		e.str(r.Outcome.SessionID)
	case OpPart:
		e.message(r.Part.Message)
	case OpUnmatched:
		e.str(r.Unmatched.ID)
		e.str(r.Unmatched.Key)
		e.message(r.Unmatched.Message)
	}
	return e.b
}

// record appends r's payload as bytes would encodeRecord's own copy of
// it, encoded in place: after room for its length, which is then put
// right before it (a snapshot's stored parts and unmatched events took a
// buffer each, grown as it was filled).
func (e *enc) record(r *Record) {
	const room = binary.MaxVarintLen64
	start := len(e.b)
	e.b = encodeRecord(append(e.b, make([]byte, room)...), r)
	n := len(e.b) - start - room
	k := binary.PutUvarint(e.b[start:start+room], uint64(n))
	copy(e.b[start+k:], e.b[start+room:])
	e.b = e.b[:start+k+n]
}

func (e *enc) message(m matcher.Message) {
	for _, v := range []string{m.Provider, m.MessageID, m.From, m.To, m.Text} {
		e.str(v)
	}
	e.uv(uint64(m.Parts))
	e.uv(uint64(m.Part))
	e.str(m.PartsRef)
	for _, v := range []string{m.Channel, m.LineType, m.Carrier, m.SenderCountry, m.Attestation} {
		e.str(v)
	}
	e.u8(b2u(m.Forwarded))
	e.str(m.RejectReason)
}

// message decodes a message of codec version v.
func (d *dec) message(v uint8) matcher.Message {
	var m matcher.Message
	m.Provider, m.MessageID, m.From, m.To, m.Text = d.str(), d.str(), d.str(), d.str(), d.str()
	m.Parts, m.Part = d.int(), d.int()
	m.PartsRef = d.str()
	if v >= 2 {
		m.Channel, m.LineType, m.Carrier, m.SenderCountry, m.Attestation = d.str(), d.str(), d.str(), d.str(), d.str()
		m.Forwarded = d.bool()
		m.RejectReason = d.str()
	}
	return m
}

// knownRecordVersion reports whether a log record of format version v can
// be read.
func knownRecordVersion(v byte) bool { return v == 1 || v == codecVersion }

// decodeRecord is the inverse of encodeRecord.
func decodeRecord(b []byte) (Record, error) {
	d := dec{b: b}
	version := d.u8()
	if !knownRecordVersion(version) {
		return Record{}, errDecode
	}
	r := Record{Op: Op(d.u8()), At: d.time()}
	switch r.Op {
	case OpCreate:
		if s := d.compact(nil, version); s != nil {
			v := s.view()
			r.Session, r.sess, r.ID = &v, s, v.ID
		}
	case OpAttempt, OpFail, OpVerify:
		r.ID, r.From, r.Provider, r.MessageID = d.str(), d.str(), d.str(), d.str()
		if version >= 2 {
			r.Via, r.Signals, r.Reason = d.proof()
			if r.Reason != "" && (r.Op != OpFail || matcher.Reason(matcher.Failed, r.Reason) != r.Reason) {
				d.fail()
			}
		}
	case OpCancel:
		r.ID, r.Reason = d.str(), d.str()
	case OpExpire, OpDelivered, OpDead:
		r.ID = d.str()
	case OpProcessed:
		r.Provider, r.MessageID = d.str(), d.str()
		r.Outcome.Kind = matcher.OutcomeKind(d.u8())
		r.Outcome.SessionID = d.str()
		if r.Outcome.Kind > matcher.NonceSpent {
			d.fail()
		}
	case OpPart:
		m := d.message(version)
		if m.Parts > 255 || m.Part < 1 || m.Part > m.Parts {
			d.fail()
		}
		r.Part = &Part{Message: m}
	case OpUnmatched:
		u := &matcher.UnmatchedEvent{ID: d.str(), Key: d.str(), Message: d.message(version), At: r.At}
		r.ID, r.Unmatched = u.ID, u
	default:
		d.fail()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return r, d.err
}
