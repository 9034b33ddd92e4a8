// Package matcher holds verification sessions and matches inbound messages
// to them (docs/matching.md).
//
// Sessions live in a fixed number of shards, each behind its own mutex. A
// session's shard is chosen from its match key — (to, sender) for an
// expected-sender session, (to, code) for a capture session — and is written
// into its id, so a lookup by id, by key or by page token takes one lock.
//
// Every state change is a Record. An operation computes its records under
// the shard lock, applies them with the same apply function that recovery
// replays, queues them on the Journal (still under the lock, so the journal
// sees each shard's changes in order) and returns only once the journal says
// they are durable.
package matcher

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mogate/mogate/matcher/text"
)

const numShards = 64

// Journal makes records durable.
type Journal interface {
	// Append queues records, in order, and returns their commit, whose
	// Wait blocks until they are durable. Append is called with a shard
	// lock held: it must not block on I/O.
	Append(recs ...Record) Commit
}

// Commit is a journal's promise for appended records.
type Commit interface {
	// Wait returns once the records are durable, or why they never will be.
	Wait() error
}

// NoJournal keeps nothing: records are applied in memory only.
type NoJournal struct{}

type committed struct{}

func (committed) Wait() error { return nil }

// Append implements Journal.
func (NoJournal) Append(...Record) Commit { return committed{} }

// Options configure a Matcher.
type Options struct {
	Journal     Journal          // nil: NoJournal
	Now         func() time.Time // nil: time.Now
	MaxAttempts int              // default for sessions; 3 when 0
	CodeLength  int              // digits of generated codes; 6 when 0
	Retention   time.Duration    // finished sessions are dropped after this; 24h when 0
	// CaptureGuessesPerHour bounds, per sender, the messages tried against
	// capture sessions, matched or not; 0: unlimited.
	CaptureGuessesPerHour int
	// OnChange, when set, is called with a copy of a session after each
	// change of its status, outside any lock.
	OnChange func(Session)
	// OnUnmatched, when set, is called with each durable message.unmatched event.
	OnUnmatched func(UnmatchedEvent)
	// EventMaxAge bounds, for Matcher.Store, the age of the final-status
	// events found undelivered when the store is made (after a restart):
	// older ones are no longer claimed. 24h when 0.
	EventMaxAge time.Duration
}

// Matcher is the session store. Its methods are safe for concurrent use.
type Matcher struct {
	opt       Options
	shards    [numShards]shard
	idem      [numShards]idemShard
	dedupe    dedupe
	parts     partials
	unmatched unmatchedEvents
	pending   pendingCounts
	guesses   guessBudget
	durable   *durable              // nil for an in-memory matcher
	wal       *walJournal           // the journal when it is the WAL: called directly
	tap       func([]Record)        // tests: sees every record journaled
	outbox    atomic.Pointer[local] // set by Store: told of every new event
	storeOnce sync.Once
}

// journal appends records. The WAL journal is called directly (no interface
// call, so the records stay on the caller's stack); other journals get a
// copy.
func (m *Matcher) journal(recs ...Record) Commit {
	if m.tap != nil {
		m.tap(recs)
	}
	if m.wal != nil {
		return m.wal.Append(recs...)
	}
	if _, ok := m.opt.Journal.(NoJournal); ok {
		return committed{}
	}
	buf := make([]Record, len(recs))
	copy(buf, recs)
	return m.opt.Journal.Append(buf...)
}

type pairKey struct{ to, from string }

type shard struct {
	mu        sync.Mutex
	byID      map[[16]byte]*session
	byPair    map[pairKey]*session           // pending expected-sender sessions
	byCode    map[string]map[string]*session // to -> code -> pending capture session
	byToken   map[[16]byte]*session
	timers    timerHeap // expiries of pending sessions
	lastPurge time.Time // last pass for finished sessions past retention
	watch     map[[16]byte][]chan struct{}
}

type idemShard struct {
	mu sync.Mutex
	m  map[string]string // key name + "\x00" + Idempotency-Key -> session id
}

// New returns an empty matcher.
func New(o Options) *Matcher {
	if o.Journal == nil {
		o.Journal = NoJournal{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.CodeLength == 0 {
		o.CodeLength = 6
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	m := &Matcher{opt: o}
	m.guesses.perHour, m.guesses.senders = float64(o.CaptureGuessesPerHour), map[string]*guessBucket{}
	for i := range m.shards {
		s := &m.shards[i]
		s.byID, s.byPair, s.byCode = map[[16]byte]*session{}, map[pairKey]*session{}, map[string]map[string]*session{}
		s.byToken, s.watch = map[[16]byte]*session{}, map[[16]byte][]chan struct{}{}
		m.idem[i].m = map[string]string{}
	}
	m.dedupe.init(o.Retention)
	m.parts.m = map[string]*partial{}
	m.unmatched.m = map[string]UnmatchedEvent{}
	return m
}

// fnv32 is FNV-1a: shard placement is written into ids and must not change
// between processes.
func fnv32(parts ...string) uint32 {
	h := uint32(2166136261)
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			h ^= uint32(p[i])
			h *= 16777619
		}
		h ^= 0xff
		h *= 16777619
	}
	return h
}

func fnv32b(to string, code []byte) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(to); i++ {
		h ^= uint32(to[i])
		h *= 16777619
	}
	h ^= 0xff
	h *= 16777619
	for _, c := range code {
		h ^= uint32(c)
		h *= 16777619
	}
	h ^= 0xff
	h *= 16777619
	return h
}

func pairShard(to, from string) int        { return int(fnv32(to, from) % numShards) }
func codeShard(to string, code []byte) int { return int(fnv32b(to, code) % numShards) }

// CreateRequest describes a new session.
type CreateRequest struct {
	Key         string
	API         string
	IDPrefix    string // "vrf_" when empty
	Number      string // expected sender (E.164) or "" for capture mode
	Code        string // "" to generate one
	To          string
	Country     string
	TTL         time.Duration
	Language    string
	Callback    string
	Redirect    string
	Metadata    []byte
	MaxAttempts int // 0: the matcher's default
	IdemKey     string
	ReqHash     string
}

// Create makes a pending session and returns it once durable. With an
// Idempotency-Key already used by the same API key it returns the first
// session (replayed = true) or ErrIdempotencyReused when the request differs.
// A pending expected-sender session of the same API key, sender and number
// is cancelled as superseded; other keys' sessions are left alone. A capture
// session's code is always generated (ErrCodeNotAllowed otherwise), at
// least MinCaptureCodeLen digits.
func (m *Matcher) Create(req CreateRequest) (s Session, replayed bool, err error) {
	if req.IdemKey != "" {
		is := &m.idem[fnv32(req.Key, req.IdemKey)%numShards]
		is.mu.Lock()
		defer is.mu.Unlock()
		if id, ok := is.m[req.Key+"\x00"+req.IdemKey]; ok {
			old, err := m.Get(id)
			if err != nil {
				return Session{}, false, err
			}
			if old.ReqHash != req.ReqHash {
				return Session{}, false, ErrIdempotencyReused
			}
			return old, true, nil
		}
		defer func() {
			if err == nil {
				is.m[req.Key+"\x00"+req.IdemKey] = s.ID
			}
		}()
	}
	if req.Number == "" && req.Code != "" {
		return Session{}, false, ErrCodeNotAllowed
	}
	generated := req.Code == ""
	length := m.opt.CodeLength
	if req.Number == "" {
		length = max(length, MinCaptureCodeLen)
	}
	for try := 0; ; try++ {
		code := req.Code
		if generated {
			code = randomDigits(length)
		}
		s, err = m.create(req, code)
		if errors.Is(err, ErrCodeInUse) && generated && try < 20 {
			continue
		}
		return s, false, err
	}
}

func (m *Matcher) create(req CreateRequest, code string) (Session, error) {
	norm, ok := text.NormalizeCode(code)
	if !ok {
		return Session{}, ErrInvalidCode
	}
	idx := pairShard(req.To, req.Number)
	if req.Number == "" {
		idx = codeShard(req.To, []byte(norm))
	}
	prefix := req.IDPrefix
	if prefix == "" {
		prefix = "vrf_"
	}
	if !slices.Contains(idPrefixes, prefix) {
		return Session{}, fmt.Errorf("matcher: unknown id prefix %q", prefix)
	}
	now := m.opt.Now().UTC()
	attempts := req.MaxAttempts
	if attempts == 0 {
		attempts = m.opt.MaxAttempts
	}
	v := &Session{
		ID: newID(prefix, idx), Key: req.Key, API: req.API, Number: req.Number, Code: code, To: req.To,
		Country: req.Country, Language: req.Language, Callback: req.Callback, Redirect: req.Redirect,
		Metadata: req.Metadata, PageToken: newID(tokenPrefix, idx), IdemKey: req.IdemKey, ReqHash: req.ReqHash,
		MaxAttempts: attempts, CreatedAt: now, ExpiresAt: now.Add(req.TTL), code: norm,
	}
	sh := &m.shards[idx]
	sh.mu.Lock()
	var recs [2]Record
	n := 0
	var superseded *session
	if req.Number == "" {
		if old := sh.byCode[req.To][norm]; old != nil && old.expires > now.UnixNano() {
			sh.mu.Unlock()
			return Session{}, ErrCodeInUse
		}
	} else {
		for old := sh.byPair[pairKey{req.To, req.Number}]; old != nil; old = pairNext(old) {
			if old.key == req.Key { // at most one per key: a pair keeps one pending session per key
				recs[n] = Record{Op: OpCancel, At: now, ID: old.idString(), Reason: ReasonSuperseded}
				m.applyTo(sh, old, recs[n])
				superseded = old
				n++
				break
			}
		}
	}
	recs[n] = Record{Op: OpCreate, At: now, ID: v.ID, Session: v}
	m.apply(sh, recs[n])
	n++
	c := m.journal(recs[:n]...)
	var old Session
	if superseded != nil {
		old = superseded.view()
	}
	sh.mu.Unlock()
	if err := c.Wait(); err != nil {
		return Session{}, err
	}
	if superseded != nil {
		m.notifyOne(old)
	}
	return *v, nil
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

// LookupIdempotent returns the session an API key created with an
// Idempotency-Key, if it is still held.
func (m *Matcher) LookupIdempotent(key, idemKey string) (Session, bool) {
	is := &m.idem[fnv32(key, idemKey)%numShards]
	is.mu.Lock()
	id, ok := is.m[key+"\x00"+idemKey]
	is.mu.Unlock()
	if !ok {
		return Session{}, false
	}
	s, err := m.Get(id)
	return s, err == nil
}

// lookup finds a session by id and calls fn with it under its shard's lock.
func (m *Matcher) lookup(id string, fn func(sh *shard, s *session)) bool {
	_, raw, ok := parseID(id)
	if !ok {
		return false
	}
	sh := &m.shards[raw[0]]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.byID[raw]
	if s == nil || s.idString() != id {
		return false
	}
	fn(sh, s)
	return true
}

// Get returns a copy of the session. A pending session past its expiry is
// reported as expired even before the sweeper records it.
func (m *Matcher) Get(id string) (Session, error) {
	var out Session
	if !m.lookup(id, func(_ *shard, s *session) { out = s.view() }) {
		return Session{}, ErrNotFound
	}
	return m.view(out), nil
}

// ByPageToken returns the session whose hosted page token is token.
func (m *Matcher) ByPageToken(token string) (Session, error) {
	raw, ok := parseToken(token)
	if !ok {
		return Session{}, ErrNotFound
	}
	sh := &m.shards[raw[0]]
	sh.mu.Lock()
	s := sh.byToken[raw]
	var out Session
	if s != nil {
		out = s.view()
	}
	sh.mu.Unlock()
	if s == nil {
		return Session{}, ErrNotFound
	}
	return m.view(out), nil
}

// PendingFor returns the pending sessions of the pair (to, sender), of
// every API key, oldest first.
func (m *Matcher) PendingFor(to, sender string) []Session {
	sh := &m.shards[pairShard(to, sender)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.opt.Now().UnixNano()
	var out []Session
	for s := sh.byPair[pairKey{to, sender}]; s != nil; s = pairNext(s) {
		if now < s.expires {
			out = append(out, s.view())
		}
	}
	return out
}

func (m *Matcher) view(s Session) Session {
	if s.Status == Pending && !m.opt.Now().Before(s.ExpiresAt) {
		s.Status, s.FinishedAt, s.Reason = Expired, s.ExpiresAt, ReasonExpired
	}
	return s
}

// Cancel cancels a pending session.
func (m *Matcher) Cancel(id string) (Session, error) {
	var out Session
	var c Commit
	notPending := false
	found := m.lookup(id, func(sh *shard, s *session) {
		now := m.opt.Now().UTC()
		if s.status != Pending || now.UnixNano() >= s.expires {
			out, notPending = s.view(), true
			return
		}
		r := Record{Op: OpCancel, At: now, ID: id, Reason: ReasonCancelledByAPI}
		m.applyTo(sh, s, r)
		out = s.view()
		c = m.journal(r)
	})
	switch {
	case !found:
		return Session{}, ErrNotFound
	case notPending:
		return m.view(out), ErrNotPending
	}
	if err := c.Wait(); err != nil {
		return Session{}, err
	}
	m.notifyOne(out)
	return out, nil
}

// MarkNotified records, durably, that the final-status event of session id
// was delivered (or, with dead, given up on).
func (m *Matcher) MarkNotified(id string, dead bool) error {
	var c Commit
	if !m.lookup(id, func(sh *shard, s *session) {
		r := Record{Op: OpDelivered, At: m.opt.Now().UTC(), ID: id}
		if dead {
			r.Op = OpDead
		}
		m.applyTo(sh, s, r)
		c = m.journal(r)
	}) {
		return ErrNotFound
	}
	return c.Wait()
}

// Unnotified returns the finished sessions whose event is still pending and
// that finished after since: after a restart they are due again.
func (m *Matcher) Unnotified(since time.Time) []Session {
	var out []Session
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for _, s := range sh.byID {
			if s.status.Final() && s.notified == NotNotified && s.finished > since.UnixNano() {
				out = append(out, s.view())
			}
		}
		sh.mu.Unlock()
	}
	return out
}

// Len returns the number of sessions held, pending or finished.
func (m *Matcher) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += len(m.shards[i].byID)
		m.shards[i].mu.Unlock()
	}
	return n
}

func (m *Matcher) notify(ss []Session) {
	for _, s := range ss {
		m.notifyOne(s)
	}
}

func (m *Matcher) notifyOne(s Session) {
	if l := m.outbox.Load(); l != nil && s.Status.Final() {
		l.finished(s)
	}
	if m.opt.OnChange != nil {
		m.opt.OnChange(s)
	}
}
