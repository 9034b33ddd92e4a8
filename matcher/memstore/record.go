package memstore

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
)

// Op is the kind of a state change.
type Op uint8

// State changes. Each is one Record; replaying the records in order rebuilds
// the matcher.
const (
	OpCreate    Op = iota + 1 // Session holds the new session
	OpAttempt                 // a wrong code from the expected sender
	OpVerify                  // From verified the session
	OpCancel                  // Reason says why: ReasonCancelledByAPI or ReasonSuperseded
	OpExpire                  // the TTL ran out
	OpFail                    // the last allowed attempt was wrong, or (Reason set) a matching message was refused by policy
	OpProcessed               // a provider message was handled; the dedupe record
	OpPart                    // one part of a multipart message arrived
	OpDelivered               // an event (ID: session or unmatched event id) was accepted by the app
	OpDead                    // an event could not be delivered in time
	OpUnmatched               // an unmatched message is to be told to an API key (Unmatched)
)

// Record is one state change: the unit the journal makes durable.
type Record struct {
	Op        Op
	At        time.Time
	ID        string                  // session id (all but OpProcessed and OpPart)
	Session   *matcher.Session        // OpCreate
	From      string                  // OpVerify, OpAttempt, OpFail
	Provider  string                  // OpVerify, OpAttempt, OpFail, OpProcessed, OpPart
	MessageID string                  // OpVerify, OpAttempt, OpFail, OpProcessed, OpPart
	Reason    string                  // OpCancel; OpFail of a message refused by policy (ReasonLineTypeRejected)
	Via       matcher.Route           // OpVerify, OpFail by policy: the message's route
	Signals   matcher.Signals         // OpVerify, OpFail by policy: what it told of its sender
	Outcome   matcher.Outcome         // OpProcessed
	Part      *Part                   // OpPart
	Unmatched *matcher.UnmatchedEvent // OpUnmatched

	sess *session // OpCreate: Session's in-memory form, when the record has one
}

// proof returns r's Via and Signals as a proof, in place: a proof is laid
// out as those two fields of a Record are (the declarations below fail to
// compile otherwise). It is read only, while r is.
func (r *Record) proof() *proof {
	return (*proof)(unsafe.Pointer(&r.Via)) //nolint:gosec // G103: Via and Signals are a proof's layout (checked below)
}

// A Record's Signals follow its Via as a proof's signals follow its via,
// and a proof is those two alone: otherwise one of these array lengths is
// a negative constant.
var (
	_ [unsafe.Offsetof(Record{}.Signals) - unsafe.Offsetof(Record{}.Via) - unsafe.Offsetof(proof{}.signals)]struct{}
	_ [unsafe.Offsetof(proof{}.signals) - (unsafe.Offsetof(Record{}.Signals) - unsafe.Offsetof(Record{}.Via))]struct{}
	_ [unsafe.Sizeof(proof{}) - unsafe.Sizeof(Record{}.Via) - unsafe.Sizeof(Record{}.Signals)]struct{}
	_ [unsafe.Sizeof(Record{}.Via) + unsafe.Sizeof(Record{}.Signals) - unsafe.Sizeof(proof{})]struct{}
	_ [0 - unsafe.Offsetof(proof{}.via)]struct{} // via first
	// and of the same types: the collector reads a proof's pointers where a
	// Record keeps its Via's and its Signals'.
	_ = func(r *Record, p *proof) (*matcher.Route, *matcher.Signals, *matcher.Route, *matcher.Signals) {
		return &r.Via, &r.Signals, &p.via, &p.signals
	}
)

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

// newIDs returns a new session's id and page token: prefix, then
// tokenPrefix, each followed by 128 random bits whose first byte is the
// shard. Both are cut from one string (one allocation where each took
// two): what keeps one past the request clones it.
func newIDs(prefix string, shard int) (id, token string) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	raw[0], raw[16] = byte(shard), byte(shard)
	rid, rtoken := (*[16]byte)(raw[:16]), (*[16]byte)(raw[16:])
	if len(prefix) > 16 {
		return renderID(prefix, rid), renderID(tokenPrefix, rtoken)
	}
	var buf [16 + 26 + len(tokenPrefix) + 26]byte
	n := copy(buf[:], prefix)
	encodeRaw((*[26]byte)(buf[n:n+26]), rid)
	n += 26
	t := n + copy(buf[n:], tokenPrefix)
	encodeRaw((*[26]byte)(buf[t:t+26]), rtoken)
	s := string(buf[:t+26])
	return s[:n], s[n:]
}

// shardOfID returns the shard an id or page token was made for.
func shardOfID(id string) (int, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return 0, false
	}
	var b [16]byte
	n, err := idEncoding.Decode(b[:], []byte(id[i+1:]))
	if err != nil || n != 16 || int(b[0]) >= numShards {
		return 0, false
	}
	return int(b[0]), true
}

// ofSession reports whether r changes a session (so it is replayed after
// its shard's cut), rather than the processed messages, the stored parts
// or the message.unmatched events (replayed after the global cut).
func (r *Record) ofSession() bool {
	switch r.Op {
	case OpProcessed, OpPart, OpUnmatched:
		return false
	}
	return !isEventID(r.ID)
}
