package memstore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

// Record payload (inside a WAL frame), version 1:
//
//	u8 format version (1) | u8 op | varint at (unix ns) | op fields
//
// Strings and byte slices are a uvarint length then the bytes; integers are
// uvarints; times are varint unix nanoseconds (0 for the zero time).
//
//	OpCreate                     session
//	OpAttempt, OpFail, OpVerify  id, from, provider, message id
//	OpCancel                     id, reason
//	OpExpire, OpDelivered, OpDead id
//	OpProcessed                  provider, message id, outcome kind (u8), outcome session id
//	OpPart                       message: provider, message id, from, to, text, parts, part, ref
//	OpUnmatched                  event id, API key name, message
//
// session: id, key, api, number, code, to, country, language, callback,
// redirect, metadata, page token, idempotency key, request hash,
// max attempts, created, expires, status (u8), attempts, verified number,
// finished, provider, message id, reason, notified (u8).

const codecVersion = 1

// errDecode is returned for a payload that does not decode.
var errDecode = errors.New("matcher: undecodable record")

type enc struct{ b []byte }

func (e *enc) u8(v uint8)     { e.b = append(e.b, v) }
func (e *enc) uv(v uint64)    { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string)   { e.uv(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(b []byte) { e.uv(uint64(len(b))); e.b = append(e.b, b...) }
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

func (d *dec) uv() uint64 {
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
	id := s.idString()
	tok := s.tokenString()
	x := s.x
	if x == nil {
		x = &sessionExtra{}
	}
	for _, v := range []string{id, s.key, x.api, s.number, s.code, s.to, x.country, x.language, x.callback, x.redirect} {
		e.str(v)
	}
	e.bytes(x.metadata)
	for _, v := range []string{tok, x.idemKey, x.reqHash} {
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
	e.str(s.provider)
	e.str(s.messageID)
	e.str(reasons[s.reason])
	e.u8(uint8(s.notified))
}

// compact decodes a session straight into its in-memory form; intern
// shares strings that repeat across sessions.
func (d *dec) compact(intern func(string) string) *session {
	s := &session{}
	var ok bool
	var x sessionExtra
	var id, tok []byte
	id = d.raw()
	s.key = intern(string(d.raw()))
	x.api = intern(string(d.raw()))
	s.number = d.str()
	s.code = d.str()
	s.to = intern(string(d.raw()))
	x.country = intern(string(d.raw()))
	x.language = intern(string(d.raw()))
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
	s.provider = intern(string(d.raw()))
	s.messageID = d.str()
	s.reason = reasonCode(s.status, string(d.raw()))
	s.notified = matcher.Notified(d.u8())
	if string(verified) != s.number {
		x.verifiedNumber = string(verified)
	}
	if d.err != nil {
		return nil
	}
	if s.prefix, s.id, ok = parseID(string(id)); !ok {
		d.fail()
	}
	if s.token, ok = parseToken(string(tok)); !ok {
		d.fail()
	}
	if s.status > matcher.Failed || s.notified > matcher.Dead || max > 1<<16-1 || att > 1<<16-1 {
		d.fail()
	}
	s.maxAttempts, s.attempts = uint16(max), uint16(att)
	s.norm, _ = text.NormalizeCode(s.code)
	if x.api != "" || x.country != "" || x.language != "" || x.callback != "" || x.redirect != "" || len(x.metadata) > 0 ||
		x.idemKey != "" || x.reqHash != "" || x.verifiedNumber != "" {
		s.x = &x
	}
	return s
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
			if s, ok = fromView(r.Session, identity); !ok {
				s = &session{} // never: Create makes only sessions fromView takes
			}
		}
		e.compact(s)
	case OpAttempt, OpFail, OpVerify:
		e.str(r.ID)
		e.str(r.From)
		e.str(r.Provider)
		e.str(r.MessageID)
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

func (e *enc) message(m matcher.Message) {
	for _, v := range []string{m.Provider, m.MessageID, m.From, m.To, m.Text} {
		e.str(v)
	}
	e.uv(uint64(m.Parts))
	e.uv(uint64(m.Part))
	e.str(m.PartsRef)
}

func (d *dec) message() matcher.Message {
	var m matcher.Message
	m.Provider, m.MessageID, m.From, m.To, m.Text = d.str(), d.str(), d.str(), d.str(), d.str()
	m.Parts, m.Part = d.int(), d.int()
	m.PartsRef = d.str()
	return m
}

// identity interns nothing: a record's strings are its own.
func identity(s string) string { return s }

// decodeRecord is the inverse of encodeRecord.
func decodeRecord(b []byte) (Record, error) {
	d := dec{b: b}
	if d.u8() != codecVersion {
		return Record{}, errDecode
	}
	r := Record{Op: Op(d.u8()), At: d.time()}
	switch r.Op {
	case OpCreate:
		if s := d.compact(identity); s != nil {
			v := s.view()
			r.Session, r.sess, r.ID = &v, s, v.ID
		}
	case OpAttempt, OpFail, OpVerify:
		r.ID, r.From, r.Provider, r.MessageID = d.str(), d.str(), d.str(), d.str()
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
		m := d.message()
		if m.Parts > 255 || m.Part < 1 || m.Part > m.Parts {
			d.fail()
		}
		r.Part = &Part{Message: m}
	case OpUnmatched:
		u := &matcher.UnmatchedEvent{ID: d.str(), Key: d.str(), Message: d.message(), At: r.At}
		r.ID, r.Unmatched = u.ID, u
	default:
		d.fail()
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	return r, d.err
}
