package redisstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode"

	"github.com/mogate/mogate/matcher"
)

// The key layout. Every key begins with the deployment's prefix P
// (redis_prefix, "mogate" by default), so deployments sharing one Redis
// never read or write each other's keys. A receiving number's keys share
// a hash tag T, a short hash of the number that session ids and page
// tokens carry, so one function call touches one slot and the layout runs
// unchanged on Redis Cluster:
//
//	P:{T}:s      hash  session id -> session JSON
//	P:{T}:tok    hash  page token -> session id
//	P:{T}:pairs  zset  pending expected-sender sessions (lex: to \0 sender \0 seq \0 id)
//	P:{T}:codes  hash  to \0 normalized code -> pending capture session id
//	P:{T}:exp    zset  pending session ids by expires_at (ms)
//	P:{T}:done   zset  finished session ids by finished_at (ms): dropped after the retention
//	P:{T}:ev     zset  undelivered events ("s:<id>", "u:<evt id>") by due time / lease end (ms)
//	P:{T}:e      hash  "u:<evt id>" -> message.unmatched event JSON; "a:<ev member>" -> failed attempts
//	P:{T}:pend   hash  receiving number -> pending sessions
//	P:{T}:seq    string creation counter (the older session of a pair wins)
//	P:{T}:d:<provider>\0<message id>  dedupe record (the outcome), PX retention
//	P:{T}:g:<sender>   capture guess bucket of a sender on this number, PX 1h
//	P:{T}:u:<sender>   unmatched budget of a sender on this number, PX 1h
//	P:{T}:mp:<provider>\0<sender>\0<ref>  parts of a multipart message, PX 1h
//	P:idem:{<hash of API key, Idempotency-Key>}  "<session id>\0<to>\0<request hash>", PX retention
//	P:nonce:<provider>\0<nonce>  spent nonce, SET NX PX retention
//	P:tags       set   every tag T in use (for the sweeper, events and counts)
//	P:limit:<name>:<key>  the gateway's shared rate limits and stream slots
//
// T is the hex of the first 4 bytes of SHA-256 of the receiving number.
// Wakeups go over pub/sub, channel P:wake: a session id when it reaches a
// final status, "ev" for other events. library.lua receives every key in
// KEYS, the first ten in tagNames' order, and derives the channel from the
// first one; it never builds a key name itself.

// DefaultPrefix begins every key when Options.Prefix is empty.
const DefaultPrefix = "mogate"

// CheckPrefix says what is wrong with a key prefix, or returns nil: it
// must be 1 to 64 printable characters without spaces and without { or }
// (which would break the hash tags that keep a number's keys in one
// Cluster slot).
func CheckPrefix(p string) error {
	if p == "" || len(p) > 64 {
		return fmt.Errorf("must be 1 to 64 characters, got %d", len(p))
	}
	for _, r := range p {
		if r == '{' || r == '}' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("must not contain %q (no braces, spaces or control characters)", r)
		}
	}
	return nil
}

// tagNames are the keys of a tag every library function takes, in
// order: library.lua's S, TOK, PAIRS, ... constants index them.
var tagNames = [...]struct{ lua, name string }{
	{"S", "s"}, {"TOK", "tok"}, {"PAIRS", "pairs"}, {"CODES", "codes"}, {"EXP", "exp"},
	{"DONE", "done"}, {"EV", "ev"}, {"E", "e"}, {"PEND", "pend"}, {"SEQ", "seq"},
}

// keyspace names every key of one prefix.
type keyspace struct{ prefix string }

// tagOf is the hash tag of a receiving number: every key of the number
// lives in its slot.
func tagOf(to string) string {
	sum := sha256.Sum256([]byte(to))
	return hex.EncodeToString(sum[:4])
}

func (k keyspace) key(tag, name string) string { return k.prefix + ":{" + tag + "}:" + name }

// tagKeys are the keys every library function takes, in tagNames' order,
// then extra.
func (k keyspace) tagKeys(tag string, extra ...string) []string {
	ks := make([]string, 0, len(tagNames)+len(extra))
	for _, n := range tagNames {
		ks = append(ks, k.key(tag, n.name))
	}
	return append(ks, extra...)
}

func (k keyspace) tags() string { return k.prefix + ":tags" }
func (k keyspace) wake() string { return k.prefix + ":wake" }

func (k keyspace) idem(key, idem string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + idem))
	return k.prefix + ":idem:{" + hex.EncodeToString(sum[:16]) + "}"
}

func (k keyspace) nonce(provider, nonce string) string {
	return k.prefix + ":nonce:" + provider + "\x00" + nonce
}

// limits begins the keys of the gateway's shared limits.
func (k keyspace) limits() string { return k.prefix + ":limit:" }

const (
	tokenPref  = "pt_"
	defaultPre = "vrf_"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns prefix and 16 bytes, base32: the tag's 4 bytes, then 96
// random bits. The same shape as the matcher's ids.
func newID(prefix, tag string) string {
	var b [16]byte
	hex.Decode(b[:4], []byte(tag))
	_, _ = rand.Read(b[4:])
	return prefix + idEncoding.EncodeToString(b[:])
}

// tagOfID returns the tag an id or page token carries.
func tagOfID(id string) (string, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 || len(id)-i-1 != 26 {
		return "", false
	}
	p := id[:i+1]
	if p != tokenPref && !matcher.ValidIDPrefix(p) {
		return "", false
	}
	var b [16]byte
	if n, err := idEncoding.Decode(b[:], []byte(id[i+1:])); err != nil || n != 16 {
		return "", false
	}
	return hex.EncodeToString(b[:4]), true
}

func randomDigits(n int) string {
	b := make([]byte, n)
	ten := big.NewInt(10)
	for i := range b {
		d, _ := rand.Int(rand.Reader, ten)
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// wire is a session as library.lua reads and writes it; times are unix
// milliseconds of the store's clock.
type wire struct {
	ID        string `json:"id"`
	Key       string `json:"key"`
	API       string `json:"api"`
	Number    string `json:"num"`
	Code      string `json:"code"`
	Norm      string `json:"norm"`
	To        string `json:"to"`
	Country   string `json:"ctry"`
	Language  string `json:"lang"`
	Callback  string `json:"cb"`
	Redirect  string `json:"rd"`
	Metadata  []byte `json:"md"`
	PageToken string `json:"pt"`
	IdemKey   string `json:"ik"`
	ReqHash   string `json:"rh"`
	Max       int    `json:"max"`
	Created   int64  `json:"cr"`
	Expires   int64  `json:"exp"`
	Status    int    `json:"st"`
	Attempts  int    `json:"att"`
	Verified  string `json:"vn"`
	Finished  int64  `json:"fin"`
	Provider  string `json:"pv"`
	MessageID string `json:"mid"`
	Reason    string `json:"rs"`
	Notified  int    `json:"nt"`
	Seq       int64  `json:"seq"`
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// session renders w as the public Session, as it reads at now: a pending
// session past its expiry is expired.
func (w *wire) session(now time.Time) matcher.Session {
	s := matcher.Session{
		ID: w.ID, Key: w.Key, API: w.API, Number: w.Number, Code: w.Code, To: w.To, Country: w.Country,
		Language: w.Language, Callback: w.Callback, Redirect: w.Redirect, Metadata: w.Metadata,
		PageToken: w.PageToken, IdemKey: w.IdemKey, ReqHash: w.ReqHash, MaxAttempts: w.Max,
		CreatedAt: fromMS(w.Created), ExpiresAt: fromMS(w.Expires), Status: matcher.Status(w.Status),
		Attempts: w.Attempts, VerifiedNumber: w.Verified, FinishedAt: fromMS(w.Finished),
		Provider: w.Provider, MessageID: w.MessageID, Reason: matcher.Reason(matcher.Status(w.Status), w.Reason), Notified: matcher.Notified(w.Notified),
	}
	if s.Status == matcher.Pending && !now.Before(s.ExpiresAt) {
		s.Status, s.FinishedAt, s.Reason = matcher.Expired, s.ExpiresAt, matcher.ReasonExpired
	}
	return s
}
