package memstore

import (
	"encoding/binary"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

// session is the in-memory form of a Session. A deployment holds many, so
// it is compact (160 bytes, a size class of the allocator): id and page
// token as 16 raw bytes (rendered on demand), times as unix nanoseconds,
// small integers, the strings that repeat across sessions (API key,
// receiving number) shared, the provider and the labels (API, country,
// language: the gateway sets a language on every session) as indexes into
// shared tables (providers, labelSets), the proof shared with every
// session verified by an equal one (proofs), and the fields most sessions
// leave empty behind one pointer.
type session struct {
	id, token   [16]byte
	created     int64
	expires     int64
	finished    int64
	key         string // API key name (shared)
	number      string // expected sender; "" in capture mode
	code        string // as shown; normalized unless x.normSet
	to          string // receiving number (shared)
	messageID   string // of the message that verified or failed it
	x           *sessionExtra
	proof       *proof // set when a message verified it or failed it by policy; shared, never changed
	attempts    uint16
	maxAttempts uint16
	status      matcher.Status
	pr          uint8 // bits 6-7: index into idPrefixes; bits 4-5: notified; bits 0-3: index into reasons
	labels      uint8 // index into labelSets, or tableInX
	provider    uint8 // of that message: index into providers, or tableInX
}

func (s *session) prefix() uint8     { return s.pr >> 6 }
func (s *session) reason() uint8     { return s.pr & 0x0f }
func (s *session) setReason(r uint8) { s.pr = s.pr&0xf0 | r }

func (s *session) notified() matcher.Notified { return matcher.Notified(s.pr >> 4 & 3) }
func (s *session) setNotified(n matcher.Notified) {
	s.pr = s.pr&0xcf | uint8(n)<<4
}

func (s *session) providerName() string {
	if s.provider == tableInX {
		return s.x.provider
	}
	return providers.name(s.provider)
}

func (s *session) setProvider(name string) {
	// The provider last found is compared here first, as a string: the
	// generic table's index compares through its shape, a call more. An
	// entry's index is never tableInX (a full table makes none).
	if e := providers.last.Load(); e != nil && e.v == name {
		s.provider = e.i
		return
	}
	if s.provider = providers.index(name); s.provider == tableInX {
		s.extra().provider = name
	}
}

// labelSet is what a session's labels index.
type labelSet struct{ api, country, language string }

func (s *session) labelSet() labelSet {
	if s.labels == tableInX {
		return s.x.labels
	}
	return labelSets.name(s.labels)
}

// setLabels records l: as an index, or in the extra fields once the table
// is full.
func (s *session) setLabels(l labelSet) {
	if s.labels = labelSets.index(l); s.labels == tableInX {
		s.extra().labels = l
	}
}

func init() {
	if len(idPrefixes) > 4 || len(reasons) > 16 || matcher.Dead > 3 {
		panic("memstore: session.pr holds 4 id prefixes, 4 notification states and 16 reasons")
	}
}

// providers are the names of the providers of the messages that finished
// sessions, which a session keeps as an index: a deployment has a few
// (one per provider it is configured with). Index 0 is "". labelSets are
// the (API, country, language) sets of sessions: a deployment has a few
// APIs and languages, and the countries it serves. Both are shared by
// every store; past tableInX entries, a session keeps its own in its
// extra fields.
var (
	providers = newTable(strings.Clone)
	labelSets = newTable(func(l labelSet) labelSet {
		return labelSet{strings.Clone(l.api), strings.Clone(l.country), strings.Clone(l.language)}
	})
)

const tableInX = 255

// table hands out small indexes for values, read without a lock (the
// tables are read on every verification and every recovered session,
// under shard locks): the state is immutable, and an addition (rare: a
// deployment's set of values settles early) copies it under mu. The value
// last looked up is compared first, with no map lookup: a deployment's
// messages mostly come through one provider.
type table[K comparable] struct {
	mu    sync.Mutex
	cur   atomic.Pointer[tableState[K]]
	last  atomic.Pointer[tableEntry[K]] // the value index last found, one of cur's ents
	clone func(K) K                     // copies a value added, so that it holds no caller's memory
}

type tableState[K comparable] struct {
	ids  map[K]uint8
	vals []K
	ents []*tableEntry[K] // each value with its index, shared by the states
}

type tableEntry[K comparable] struct {
	v K
	i uint8
}

// newTable returns a table whose index 0 is the zero value.
func newTable[K comparable](clone func(K) K) *table[K] {
	var zero K
	t := &table[K]{clone: clone}
	t.cur.Store(&tableState[K]{ids: map[K]uint8{zero: 0}, vals: []K{zero}, ents: []*tableEntry[K]{{zero, 0}}})
	return t
}

// index returns v's index, adding v when new. The front entry (last) is
// written on a miss: a cache line shared by every core, kept knowingly
// because a deployment's messages mostly come through one provider and
// one label set (a pending count per number, spread over a pool, was
// not: its front entry cost more than it saved).
func (t *table[K]) index(v K) uint8 {
	if e := t.last.Load(); e != nil && e.v == v {
		return e.i
	}
	st := t.cur.Load()
	if i, ok := st.ids[v]; ok {
		t.last.Store(st.ents[i])
		return i
	}
	return t.add(v)
}

// indexBytes is index for a name being decoded: no string is made for a
// name already known.
func indexBytes(t *table[string], name []byte) uint8 {
	if i, ok := t.cur.Load().ids[string(name)]; ok {
		return i
	}
	return t.add(string(name))
}

func (t *table[K]) add(v K) uint8 {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.cur.Load()
	if i, ok := old.ids[v]; ok {
		return i
	}
	if len(old.vals) == tableInX {
		return tableInX
	}
	st := &tableState[K]{ids: make(map[K]uint8, len(old.ids)+1), vals: append(slices.Clip(old.vals), v)}
	maps.Copy(st.ids, old.ids)
	i := uint8(len(old.vals))
	v = t.clone(v)
	st.vals[i] = v
	st.ids[v] = i
	st.ents = append(slices.Clip(old.ents), &tableEntry[K]{v, i})
	t.cur.Store(st)
	return i
}

// name returns the value of index i, handed out by index: every state
// since holds it.
func (t *table[K]) name(i uint8) K { return t.cur.Load().vals[i] }

// proof is what the message that verified a session (or failed it by
// policy) told: its route and its signals.
type proof struct {
	via     matcher.Route
	signals matcher.Signals
}

// proofs shares equal proofs across sessions (and stores: a proof is never
// changed): the messages that verify sessions come on a few numbers from a
// few carriers, so most proofs repeat, and a verification takes no
// allocation for its proof. Reads take no lock: known proofs are in an
// immutable map (read); new ones go to dirty, under mu, which is merged
// into a new read map once the lookups that took the lock (adding or
// finding a proof there) since the last merge are a fraction of read's
// size (so the copying stays linear in them). Its key holds
// SenderSessions24h, so it keeps filling: once it holds maxProofs, it
// starts over empty (sessions keep the proofs they point to, and recent
// the last ones found: equal to what they stand for, as every proof).
// Before the maps, a proof is looked for among the recent ones, by a
// hash that reads a few bytes, and compared.
var proofs = newProofCache()

type proofCache struct {
	read   atomic.Pointer[map[proof]*proof]
	mu     sync.Mutex
	dirty  map[proof]*proof
	misses int // lookups answered from dirty since its last merge
	// recent holds the proofs last found, one per slot of a cheap hash: a
	// proof found there is compared, not hashed through the map (which
	// hashes each of its six strings).
	recent [recentProofs]atomic.Pointer[proof]
}

// recentProofs is the number of slots of proofCache.recent.
const (
	recentProofBits = 10
	recentProofs    = 1 << recentProofBits
)

func newProofCache() *proofCache {
	c := &proofCache{dirty: map[proof]*proof{}}
	c.read.Store(&map[proof]*proof{})
	return c
}

// maxProofs bounds proofs: past it, the table starts over.
const maxProofs = 1 << 14

// sharedProof returns the shared copy of *p (nil for the zero proof).
func sharedProof(p *proof) *proof { return proofs.get(p) }

func (c *proofCache) get(p *proof) *proof {
	if p.via.Channel == "" && *p == (proof{}) { // a message's proof has its channel
		return nil
	}
	slot := &c.recent[p.slot()]
	if q := slot.Load(); q != nil && q.equal(p) {
		return q
	}
	q := c.find(p)
	slot.Store(q)
	return q
}

// slot returns p's slot in recent: a mix of what tells proofs apart at
// little cost (the count, the strings' lengths and ends). Two proofs of
// one slot only take turns in it; each is still shared through the maps.
func (p *proof) slot() int {
	s := &p.signals
	h := uint64(s.SenderSessions24h)<<1 | uint64(b2i(s.Forwarded))
	h = mixEnds(mixEnds(mixEnds(h, p.via.Channel), p.via.To), s.LineType)
	h = mixEnds(mixEnds(mixEnds(h, s.Carrier), s.SenderCountry), s.Attestation)
	return int(h * 0x9e3779b97f4a7c15 >> (64 - recentProofBits))
}

// equal is *p == *q with no call for the comparison of the two structs
// (a call, then one for Signals, and one a string): the count and the
// lengths first, then each string not empty. TestProofEqual keeps it to
// every field.
func (p *proof) equal(q *proof) bool {
	a, b := &p.signals, &q.signals
	if a.SenderSessions24h != b.SenderSessions24h || a.Forwarded != b.Forwarded ||
		len(p.via.Channel) != len(q.via.Channel) || len(p.via.To) != len(q.via.To) ||
		len(a.LineType) != len(b.LineType) || len(a.Carrier) != len(b.Carrier) ||
		len(a.SenderCountry) != len(b.SenderCountry) || len(a.Attestation) != len(b.Attestation) {
		return false
	}
	return sameBytes(p.via.Channel, q.via.Channel) && sameBytes(p.via.To, q.via.To) &&
		sameBytes(a.LineType, b.LineType) && sameBytes(a.Carrier, b.Carrier) &&
		sameBytes(a.SenderCountry, b.SenderCountry) && sameBytes(a.Attestation, b.Attestation)
}

// sameBytes is x == y for strings of one length, with no call when they
// are empty.
func sameBytes(x, y string) bool { return len(x) == 0 || x == y }

// mixEnds mixes the length and the end characters of v into h, as one
// word (one multiplication a string).
func mixEnds(h uint64, v string) uint64 {
	w := uint64(len(v))
	if len(v) > 0 {
		w |= uint64(v[0])<<8 | uint64(v[len(v)-1])<<16
	}
	return h*31 + w
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// find returns the shared copy of *p from the maps, adding it.
func (c *proofCache) find(p *proof) *proof {
	if q := (*c.read.Load())[*p]; q != nil {
		return q
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	read := c.read.Load()
	if q := (*read)[*p]; q != nil {
		return q
	}
	q := c.dirty[*p]
	if q != nil {
		c.misses++
	} else {
		if len(*read)+len(c.dirty) >= maxProofs {
			read = &map[proof]*proof{}
			c.read.Store(read)
			clear(c.dirty)
		}
		q = new(proof)
		*q = *p
		c.dirty[*q] = q
	}
	// Merge once the slow lookups since the last merge are a fraction of
	// read's size: each merge's copying is paid for by as many of them.
	if len(c.dirty)+c.misses >= len(*read)/4+8 {
		m := make(map[proof]*proof, len(*read)+len(c.dirty))
		maps.Copy(m, *read)
		maps.Copy(m, c.dirty)
		c.read.Store(&m)
		clear(c.dirty)
		c.misses = 0
	}
	return q
}

// len is the number of proofs held, for tests.
func (c *proofCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(*c.read.Load()) + len(c.dirty)
}

// reasons are the reasons of final statuses; a session stores its index.
var reasons = []string{"", matcher.ReasonCancelledByAPI, matcher.ReasonSuperseded, matcher.ReasonMaxAttempts, matcher.ReasonExpired,
	matcher.ReasonLineTypeRejected}

// reasonCode is the index of the reason of a session in status st whose
// recorded reason is r (see Reason: old records' "cancelled" included).
func reasonCode(st matcher.Status, r string) uint8 {
	r = matcher.Reason(st, r)
	for i, v := range reasons {
		if v == r {
			return uint8(i)
		}
	}
	return 0
}

// finishReason is reasonCode(st, ""), the reason finish gives a session
// of status st: looked up for the statuses known at start (reasonCode
// compares strings).
func finishReason(st matcher.Status) uint8 {
	if int(st) < len(finishReasons) {
		return finishReasons[st]
	}
	return reasonCode(st, "")
}

var finishReasons = func() (t [matcher.Failed + 1]uint8) {
	for st := range t {
		t[st] = reasonCode(matcher.Status(st), "")
	}
	return t
}()

// sessionExtra holds the rarely set fields.
type sessionExtra struct {
	// norm is the normalized code when it differs from the code as shown
	// (normSet).
	norm    string
	normSet bool

	labels             labelSet // when session.labels is tableInX
	callback, redirect string
	metadata           []byte
	idemKey, reqHash   string
	verifiedNumber     string
	provider           string // when session.provider is tableInX
	// pairNext is the next pending session of the same (to, sender) pair,
	// of another API key, created later (see shard.byPair).
	pairNext *session

	// routes are the session's routes; nil means the one route {sms, to}.
	routes []matcher.Route
	// nums are the distinct numbers of routes other than to, and next
	// their chain links, as pairNext is to's (see routes.go).
	nums          []string
	next          []*session
	clientCountry string
}

// idPrefixes are the id prefixes sessions may have, in the order of
// session.prefix.
var idPrefixes = matcher.IDPrefixes()

const tokenPrefix = "pt_"

func (s *session) capture() bool { return s.number == "" }

// normCode is the normalized code.
func (s *session) normCode() string {
	if s.x != nil && s.x.normSet {
		return s.x.norm
	}
	return s.code
}

// setNorm records the normalized code of s.code.
func (s *session) setNorm() {
	if norm, _ := text.NormalizeCode(s.code); norm != s.code {
		x := s.extra()
		x.norm, x.normSet = norm, true
	}
}

// idString renders the id: one allocation, the string itself.
func (s *session) idString() string { return idString(s.prefix(), &s.id) }

// isID reports whether id, which parseID read as prefix and s's raw id, is
// s.idString() itself, without rendering it (a lookup by id would allocate
// the string only to compare it): the prefixes agree and id's last
// character carries no bits past the 16th byte, which decodeRaw drops, so
// no other spelling of the same raw id passes.
func (s *session) isID(prefix uint8, id string) bool {
	return prefix == s.prefix() && len(id) > 0 && idDecode[id[len(id)-1]]&3 == 0
}

// idString renders the id of prefix index prefix and raw id id.
func idString(prefix uint8, id *[16]byte) string { return renderID(idPrefixes[prefix], id) }

func (s *session) tokenString() string { return renderID(tokenPrefix, &s.token) }

// renderID returns prefix followed by raw id id as idEncoding writes it (26
// characters), built on the stack and copied out once: one allocation, no
// concatenation. Every prefix is short (idPrefixes, tokenPrefix).
func renderID(prefix string, id *[16]byte) string {
	var buf [16 + 26]byte
	if len(prefix) > 16 {
		return prefix + idEncoding.EncodeToString(id[:])
	}
	n := copy(buf[:], prefix)
	encodeRaw((*[26]byte)(buf[n:n+26]), id)
	return string(buf[:n+26])
}

// idChunk is the size of the chunks idArena renders ids into: 34 ids of
// the usual 30 bytes, where each of its own took a 32-byte block.
const idChunk = 1024

// idArena renders the session ids of verifications (a shard's, used under
// its lock) into a shared chunk instead of an allocation each: one
// allocation a chunk. A chunk is freed once none of its ids is held; the
// ids of verifications live alike (the dedupe table keeps each outcome for
// the retention), so chunks hold few dead ones.
type idArena struct {
	chunk *[idChunk]byte
	off   int // the chunk's bytes before off are handed out
}

// idMax is the room idString takes in a chunk for an id: a prefix word
// (idPrefixWords) and the 26 characters of the raw id.
const idMax = 8 + 26

// idString is s.idString(), rendered in the arena. Bytes of a chunk are
// written only before they are handed out, so the strings never change.
// The prefix goes in as one 8-byte store (idPrefixWords), whose bytes
// past the prefix the raw id's characters then overwrite: no copy call.
func (a *idArena) idString(s *session) string {
	p := &idPrefixWords[s.prefix()]
	if p.n > 8 {
		return s.idString()
	}
	if a.chunk == nil || a.off > idChunk-idMax {
		a.chunk, a.off = new([idChunk]byte), 0
	}
	b := (*[idMax]byte)(unsafe.Add(unsafe.Pointer(a.chunk), a.off)) //nolint:gosec // G103: a.off <= idChunk-idMax, checked above: within the chunk
	binary.LittleEndian.PutUint64(b[:8], p.w)
	encodeRaw((*[26]byte)(unsafe.Add(unsafe.Pointer(b), p.n)), &s.id) //nolint:gosec // G103: p.n <= 8, so the 26 bytes are within b's idMax
	n := int(p.n) + 26
	a.off += n
	return unsafe.String(&b[0], n) //nolint:gosec // G103: these bytes of the chunk are never written again
}

// idPrefixWords holds each id prefix of idPrefixes, by its index (as
// session.prefix gives it), as an 8-byte little-endian word and its
// length; a prefix longer than 8 bytes (none so far) has n past 8.
var idPrefixWords = func() (t [4]struct {
	w uint64
	n uint8
}) {
	if len(idPrefixes) > len(t) { // session.pr keeps a prefix's index in 2 bits
		panic("memstore: more id prefixes than a session's 2 bits index")
	}
	for i := range t {
		t[i].n = 0xff
	}
	for i, p := range idPrefixes {
		if len(p) <= 8 {
			var b [8]byte
			copy(b[:], p)
			t[i].w, t[i].n = binary.LittleEndian.Uint64(b[:]), uint8(len(p))
		}
	}
	return t
}()

// encodeRaw writes the 16 bytes of id as idEncoding does, with no padding:
// the 128 bits, big-endian, then 2 zero bits, as 13 groups of 10 bits,
// each written as its two characters (idPairs) by one load and one store.
func encodeRaw(dst *[26]byte, id *[16]byte) {
	hi, lo := binary.BigEndian.Uint64(id[:8]), binary.BigEndian.Uint64(id[8:])
	put := func(k int, v uint64) { binary.LittleEndian.PutUint16(dst[2*k:], idPairs[v&1023]) }
	put(0, hi>>54)
	put(1, hi>>44)
	put(2, hi>>34)
	put(3, hi>>24)
	put(4, hi>>14)
	put(5, hi>>4)
	put(6, hi<<6|lo>>58)
	put(7, lo>>48)
	put(8, lo>>38)
	put(9, lo>>28)
	put(10, lo>>18)
	put(11, lo>>8)
	put(12, lo<<2)
}

// idPairs holds, for each 10-bit value, its two characters of idAlphabet,
// the first in the low byte.
var idPairs = func() (t [1024]uint16) {
	for v := range t {
		t[v] = uint16(idAlphabet[v>>5]) | uint16(idAlphabet[v&31])<<8
	}
	return t
}()

// idAlphabet is idEncoding's alphabet.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func (s *session) extra() *sessionExtra {
	if s.x == nil {
		s.x = &sessionExtra{}
	}
	return s.x
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// view renders the session as the public Session.
func (s *session) view() matcher.Session {
	v := matcher.Session{
		ID: s.idString(), Key: s.key, Number: s.number, Code: s.code, To: s.to, PageToken: s.tokenString(),
		MaxAttempts: int(s.maxAttempts), CreatedAt: unixTime(s.created), ExpiresAt: unixTime(s.expires),
		Status: s.status, Attempts: int(s.attempts), FinishedAt: unixTime(s.finished),
		Provider: s.providerName(), MessageID: s.messageID, Reason: reasons[s.reason()], Notified: s.notified(),
	}
	l := s.labelSet()
	v.API, v.Country, v.Language = l.api, l.country, l.language
	if x := s.x; x != nil {
		v.Callback, v.Redirect = x.callback, x.redirect
		v.Metadata, v.IdemKey, v.ReqHash = x.metadata, x.idemKey, x.reqHash
		v.VerifiedNumber = x.verifiedNumber
		v.Routes = slices.Clone(x.routes)
		v.ClientCountry = x.clientCountry
	}
	if p := s.proof; p != nil {
		v.Via, v.Signals = p.via, p.signals
	}
	if v.Routes == nil {
		v.Routes = []matcher.Route{{Channel: matcher.ChannelSMS, To: s.to}}
	}
	if s.status == matcher.Verified && v.VerifiedNumber == "" {
		v.VerifiedNumber = s.number
	}
	return v
}

// parseID splits a session id into its prefix index and raw bytes.
func parseID(id string) (prefix uint8, raw [16]byte, ok bool) {
	for i, p := range idPrefixes {
		if rest, found := strings.CutPrefix(id, p); found {
			raw, ok = decodeRaw(rest)
			return uint8(i), raw, ok
		}
	}
	return 0, raw, false
}

func parseToken(token string) ([16]byte, bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	if !found {
		return [16]byte{}, false
	}
	return decodeRaw(rest)
}

// decodeRaw decodes the 26 characters of an id or token as idEncoding
// does (the 2 bits past the 16th byte are dropped), without its general
// machinery: recovery decodes two per session. Two runs of 12 characters
// make 60 bits each and the last two 10: 130 bits, the 128 of the id then
// the 2 dropped. A character outside the alphabet decodes as 0xff, which
// sets bits no character of it has.
func decodeRaw(s string) (raw [16]byte, ok bool) {
	if len(s) != 26 {
		return raw, false
	}
	hi, bad1 := decode12(s[:12])
	mid, bad2 := decode12(s[12:24])
	a, b := idDecode[s[24]], idDecode[s[25]]
	if (bad1|bad2|a|b)&^31 != 0 {
		return raw, false
	}
	binary.BigEndian.PutUint64(raw[:8], hi<<4|mid>>56)
	binary.BigEndian.PutUint64(raw[8:], mid<<8|uint64(a)<<3|uint64(b)>>2)
	return raw, int(raw[0]) < numShards
}

// decode12 decodes 12 characters of idEncoding's alphabet into 60 bits,
// with the OR of their values (past 31: one was not of the alphabet).
func decode12(s string) (v uint64, or byte) {
	for i := range 12 {
		c := idDecode[s[i]]
		or |= c
		v = v<<5 | uint64(c&31)
	}
	return v, or
}

// idDecode maps a character of idEncoding's alphabet to its value, any
// other to 0xff.
var idDecode = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range []byte(idAlphabet) {
		t[c] = byte(i)
	}
	return t
}()

// fromView makes the in-memory form of a public Session.
func fromView(v *matcher.Session) (*session, bool) {
	prefix, id, ok := parseID(v.ID)
	token, ok2 := parseToken(v.PageToken)
	if !ok || !ok2 || v.Attempts > 1<<16-1 || v.MaxAttempts > 1<<16-1 || v.Notified > matcher.Dead { // pr holds 2 bits of it
		return nil, false
	}
	s := &session{
		id: id, token: token, pr: prefix<<6 | uint8(v.Notified&3)<<4 | reasonCode(v.Status, v.Reason), status: v.Status,
		attempts: uint16(v.Attempts), maxAttempts: uint16(v.MaxAttempts),
		key: v.Key, number: v.Number, code: v.Code, to: v.To,
		created: unixNano(v.CreatedAt), expires: unixNano(v.ExpiresAt), finished: unixNano(v.FinishedAt),
		messageID: v.MessageID,
		proof:     sharedProof(&proof{via: v.Via, signals: v.Signals}),
	}
	verified := ""
	if v.VerifiedNumber != v.Number {
		verified = v.VerifiedNumber
	}
	routes := v.Routes
	if len(routes) == 1 && routes[0] == (matcher.Route{Channel: matcher.ChannelSMS, To: v.To}) {
		routes = nil // the default: nothing to keep
	}
	if v.Callback != "" || v.Redirect != "" || len(v.Metadata) > 0 ||
		v.IdemKey != "" || v.ReqHash != "" || verified != "" || len(routes) > 0 || v.ClientCountry != "" {
		s.x = &sessionExtra{
			callback: v.Callback, redirect: v.Redirect,
			metadata: v.Metadata, idemKey: v.IdemKey, reqHash: v.ReqHash, verifiedNumber: verified,
			clientCountry: v.ClientCountry,
		}
		s.setRoutes(slices.Clone(routes))
	}
	s.setNorm()
	s.setProvider(v.Provider)
	s.setLabels(labelSet{v.API, v.Country, v.Language})
	return s, true
}

// interner shares equal strings while one recovery worker decodes
// (shards.go: each worker has its own, so it takes no lock).
type interner struct {
	m map[string]string
	// recent holds the strings last returned, by length and end bytes: a
	// session's dozen shared strings (key, labels, receiving number, its
	// proof's) are mostly those of the session before, found by one
	// comparison where the map hashed each.
	recent [64]string
	// proofs holds session proofs decoded, by a hash of their encoding
	// (dec.sessionProof).
	proofs [16]proofSpan
}

// proofSpan is a proof's encoding, in the snapshot being read, and its
// shared copy.
type proofSpan struct {
	enc []byte
	p   *proof
}

// str returns b's string: shared through in, or with in nil its own.
func (in *interner) str(b []byte) string {
	if in == nil {
		return string(b)
	}
	return in.getBytes(b)
}

// getBytes returns the string of b, shared with an equal one already
// held (at most 65,536 are): no string is made for one already held.
func (in *interner) getBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	slot := &in.recent[(len(b)*7^int(b[0])^int(b[len(b)-1])<<2)&(len(in.recent)-1)]
	if *slot == string(b) {
		return *slot
	}
	if v, ok := in.m[string(b)]; ok {
		*slot = v
		return v
	}
	s := string(b)
	if in.m == nil {
		in.m = map[string]string{}
	}
	if len(in.m) < 1<<16 {
		in.m[s] = s
	}
	*slot = s
	return s
}
