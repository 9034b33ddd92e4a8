package redisstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
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
//	P:{T}:pairs  zset  pending expected-sender sessions (lex: to \0 sender \0 seq \0 id), one member per route number
//	P:{T}:codes  hash  to \0 normalized code -> pending capture session id, one field per route number
//	P:{T}:links  hash  "p\0<to>\0<sender>" or "c\0<to>\0<code>" -> JSON {home tag: expiry ms}: sessions homed in other tags with a route on to
//	P:{T}:linkexp zset links fields by their latest expiry (ms), for the sweep
//	P:{T}:exp    zset  pending session ids by expires_at (ms)
//	P:{T}:done   zset  finished session ids by finished_at (ms): dropped after the retention
//	P:{T}:ev     zset  undelivered events ("s:<id>", "u:<evt id>") by due time / lease end (ms)
//	P:{T}:e      hash  "u:<evt id>" -> message.unmatched event JSON; "a:<ev member>" -> failed attempts
//	P:{T}:pend   hash  receiving number -> pending sessions (of this home tag, per route number)
//	P:{T}:seq    string creation counter (the older session of a pair wins)
//	P:{T}:d:<provider>\0<message id>  dedupe record (the outcome), PX retention
//	P:{T}:g:<sender>   capture guess bucket of a sender on this number, PX 1h
//	P:{T}:u:<sender>   unmatched budget of a sender on this number, PX 1h
//	P:{T}:mp:<provider>\0<sender>\0<ref>  parts of a multipart message, PX 1h
//	P:idem:{<hash of API key, Idempotency-Key>}  "<session id>\0<to>\0<request hash>", PX retention
//	P:nonce:<provider>\0<nonce>  spent nonce, SET NX PX retention
//	P:vs:{<hash of sender>}  zset  "<API key>\0<session id>" of the sessions verified for the sender, by verified_at (ms), PX 24h
//	                         (read and written by ingest on one server; on Cluster, where it is in another slot, by separate calls)
//	P:tags       set   every tag T in use (for the sweeper, events and counts)
//	P:limit:<name>:<key>  the gateway's shared rate limits and stream slots
//
// T is the hex of the first 4 bytes of SHA-256 of the receiving number.
// A session lives in the tag of its first route's number (To), its home,
// which indexes it under every number of its routes; the tag of a route
// number other than the home's links that number to the home (links), so
// a message on it finds the home.
// Wakeups go over pub/sub, channel P:wake: a session id when it reaches a
// final status, "ev" for other events.
//
// This file is the one place that names keys. library.lua builds no key
// name: each function receives its keys in KEYS, in the order libFuncs
// gives, and indexes them only through the constants luaKeyHeader
// declares from libFuncs (keys[S], keys[INGEST_DEDUPE]); it derives the
// wakeup channel from keys[S]. keys_test.go checks library.lua against
// libFuncs.

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

// keyspace names every key of one prefix.
type keyspace struct{ prefix string }

// tagOf is the hash tag of a receiving number: every key of the number
// lives in its slot.
func tagOf(to string) string {
	sum := sha256.Sum256([]byte(to))
	return hex.EncodeToString(sum[:4])
}

// key is the key name of a tag's key.
func (k keyspace) key(tag, name string) string { return k.prefix + ":{" + tag + "}:" + name }

// The names of a tag's keys (P:{T}:<name>).
const (
	keySessions     = "s"
	keyTokens       = "tok"
	keyPairs        = "pairs"
	keyCodes        = "codes"
	keyExpiries     = "exp"
	keyFinished     = "done"
	keyEvents       = "ev"
	keyEventRecords = "e"
	keyPending      = "pend"
	keySeq          = "seq"
	keySync         = "sync" // written by replays so that their WAIT covers what they read (confirm)
	keyLinks        = "links"
	keyLinkExp      = "linkexp"
)

// tagNames are a tag's keys that library functions take first (libFunc
// tag), in this order, each under its Lua constant.
var tagNames = [...]struct{ lua, name string }{
	{"S", keySessions}, {"TOK", keyTokens}, {"PAIRS", keyPairs}, {"CODES", keyCodes}, {"EXP", keyExpiries},
	{"DONE", keyFinished}, {"EV", keyEvents}, {"E", keyEventRecords}, {"PEND", keyPending}, {"SEQ", keySeq},
	{"LINKS", keyLinks}, {"LINKEXP", keyLinkExp},
}

// A libFunc is a function of library.lua (or a script) and the keys it
// takes, in KEYS order: the tag's keys (tagNames) when tag is set, then
// extra. Lua indexes a tag key by its constant (keys[S]) and an extra
// one by the function's name and its own (keys[INGEST_DEDUPE]).
type libFunc struct {
	name  string
	tag   bool
	extra []string
}

// libFuncs are the functions of library.lua.
var libFuncs = []libFunc{
	{name: "create", tag: true},
	{name: "link", tag: true},
	{name: "count", extra: []string{"VERIFIED"}},
	{name: "cancel", tag: true},
	{name: "ingest", tag: true, extra: []string{"DEDUPE", "GUESSES", "UNMATCHED", "PARTS", "VERIFIED"}},
	{name: "part", extra: []string{"DEDUPE", "PARTS"}},
	{name: "sweep", tag: true},
	{name: "claim", tag: true},
	{name: "ack", tag: true},
	{name: "defer", tag: true},
	{name: "idem_release", extra: []string{"IDEM"}},
}

// pendingFunc is pendingScript's: a plain read-only script.
var pendingFunc = libFunc{name: "pending", extra: []string{"PAIRS", "S", "LINKS"}}

// libFuncByName indexes libFuncs.
var libFuncByName = func() map[string]libFunc {
	m := make(map[string]libFunc, len(libFuncs))
	for _, f := range libFuncs {
		m[f.name] = f
	}
	return m
}()

// luaConst is the Lua constant of f's extra key name.
func (f libFunc) luaConst(name string) string { return strings.ToUpper(f.name) + "_" + name }

// luaKeyHeader declares the Lua constants of fs's keys: each one's
// position in KEYS.
func luaKeyHeader(fs ...libFunc) string {
	var b strings.Builder
	tag := false
	for _, f := range fs {
		if f.tag && !tag {
			tag = true
			for i, n := range tagNames {
				fmt.Fprintf(&b, "local %s = %d\n", n.lua, i+1)
			}
		}
		first := 1
		if f.tag {
			first += len(tagNames)
		}
		for i, n := range f.extra {
			fmt.Fprintf(&b, "local %s = %d\n", f.luaConst(n), first+i)
		}
	}
	return b.String()
}

// keyArgs name the keys of one call.
type keyArgs struct {
	tag                 string // the receiving number's hash tag
	provider, messageID string // a message's dedupe record
	from, ref           string // its sender's budgets, its multipart reference
	apiKey, idemKey     string // an idempotency key
	// countInTag names, for a function of the number's tag on Cluster,
	// a key of that tag in place of the sender's count (P:vs:), which
	// lives in a slot of its own; the function then leaves it alone.
	countInTag bool
}

// tagKeys are a tag's keys (tagNames), each already held in an
// interface value: a call's FCALL arguments take them as they are, with
// no key name built nor boxed per call (Store.call).
type tagKeys []any

// tagKeysOf names the keys of tag.
func (k keyspace) tagKeysOf(tag string) tagKeys {
	ks := make(tagKeys, len(tagNames))
	for i, t := range tagNames {
		ks[i] = k.key(tag, t.name)
	}
	return ks
}

// fcallArgs are the arguments of the FCALL of f (its full name, name)
// for a, followed by args: f's keys in order, the tag's from tk when
// given (else named here), and the first key, whose slot the call goes to.
func (k keyspace) fcallArgs(f libFunc, name any, tk tagKeys, a keyArgs, args []any) ([]any, string, error) {
	n := len(f.extra)
	if f.tag {
		n += len(tagNames)
	}
	out := make([]any, 0, 3+n+len(args))
	out = append(out, "fcall", name, n)
	if f.tag {
		if tk == nil {
			tk = k.tagKeysOf(a.tag)
		}
		out = append(out, tk...)
	}
	for _, x := range f.extra {
		key, ok := k.named(x, a)
		if !ok {
			return nil, "", fmt.Errorf("redisstore: function %s takes an unknown key %s", f.name, x)
		}
		out = append(out, key)
	}
	first := ""
	if n > 0 {
		first = out[3].(string)
	}
	return append(out, args...), first, nil
}

// keys are f's KEYS for a, in order.
func (k keyspace) keys(f libFunc, a keyArgs) ([]string, error) {
	n := len(f.extra)
	if f.tag {
		n += len(tagNames)
	}
	ks := make([]string, 0, n)
	if f.tag {
		for _, t := range tagNames {
			ks = append(ks, k.key(a.tag, t.name))
		}
	}
	for _, name := range f.extra {
		key, ok := k.named(name, a)
		if !ok {
			return nil, fmt.Errorf("redisstore: function %s takes an unknown key %s", f.name, name)
		}
		ks = append(ks, key)
	}
	return ks, nil
}

// named is the key a libFunc's extra name stands for.
func (k keyspace) named(name string, a keyArgs) (string, bool) {
	for _, t := range tagNames {
		if t.lua == name {
			return k.key(a.tag, t.name), true
		}
	}
	switch name {
	case "DEDUPE":
		return k.key(a.tag, "d:"+a.provider+"\x00"+a.messageID), true
	case "GUESSES":
		return k.key(a.tag, "g:"+a.from), true
	case "UNMATCHED":
		return k.key(a.tag, "u:"+a.from), true
	case "PARTS":
		return k.key(a.tag, "mp:"+a.provider+"\x00"+a.from+"\x00"+a.ref), true
	case "IDEM":
		return k.idem(a.apiKey, a.idemKey), true
	case "VERIFIED":
		if a.countInTag {
			return k.key(a.tag, "vs"), true
		}
		return k.verified(a.from), true
	}
	return "", false
}

func (k keyspace) tags() string { return k.prefix + ":tags" }
func (k keyspace) wake() string { return k.prefix + ":wake" }

func (k keyspace) idem(key, idem string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + idem))
	return k.prefix + ":idem:{" + hex.EncodeToString(sum[:16]) + "}"
}

// verified is the key of the sessions verified for sender
// (Signals.SenderSessions24h).
func (k keyspace) verified(sender string) string {
	sum := sha256.Sum256([]byte(sender))
	return k.prefix + ":vs:{" + hex.EncodeToString(sum[:16]) + "}"
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
	_, _ = hex.Decode(b[:4], []byte(tag)) // tag is tagOf's 8 hex digits
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

// randomDigits returns n uniformly random decimal digits: random bytes
// below 250 (25 times 10), each taken modulo 10, the others drawn again.
func randomDigits(n int) string {
	out := make([]byte, 0, n)
	var buf [32]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out)
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
	Seq       int64  `json:"seq,omitempty"` // appended by library.lua's create; none for a capture session

	Routes        []wireRoute  `json:"rt,omitempty"` // none in records written before routes: [{sms, to}]
	ClientCountry string       `json:"cc,omitempty"`
	Via           *wireRoute   `json:"via,omitempty"`
	Signals       *wireSignals `json:"sig,omitempty"`
}

// wireRoute is a matcher.Route in a record.
type wireRoute struct {
	Channel string `json:"c"`
	To      string `json:"to"`
}

// wireSignals are matcher.Signals in a record, as library.lua's verify
// writes them.
type wireSignals struct {
	LineType       string `json:"lt,omitempty"`
	Carrier        string `json:"ca,omitempty"`
	SenderCountry  string `json:"sc,omitempty"`
	Attestation    string `json:"at,omitempty"`
	Forwarded      bool   `json:"fw,omitempty"`
	SenderSessions int    `json:"ss,omitempty"`
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
		ClientCountry: w.ClientCountry,
	}
	for _, r := range w.Routes {
		s.Routes = append(s.Routes, matcher.Route{Channel: r.Channel, To: r.To})
	}
	if len(s.Routes) == 0 {
		s.Routes = []matcher.Route{{Channel: matcher.ChannelSMS, To: w.To}}
	}
	if w.Via != nil {
		s.Via = matcher.Route{Channel: w.Via.Channel, To: w.Via.To}
	}
	if g := w.Signals; g != nil {
		s.Signals = matcher.Signals{LineType: g.LineType, Carrier: g.Carrier, SenderCountry: g.SenderCountry,
			Attestation: g.Attestation, Forwarded: g.Forwarded, SenderSessions24h: g.SenderSessions}
	}
	if s.Status == matcher.Pending && !now.Before(s.ExpiresAt) {
		s.Status, s.FinishedAt, s.Reason = matcher.Expired, s.ExpiresAt, matcher.ReasonExpired
	}
	return s
}
