// Package memstore is the memory store of one process (store: memory), a
// peer of package redisstore: it implements matcher.Store, optionally
// durable through a write-ahead log (Open). It holds verification sessions
// and matches inbound messages to them (docs/matching.md).
//
// Sessions live in a fixed number of shards, each behind its own mutex. A
// session's shard is chosen from its match key — (to, sender) for an
// expected-sender session, (to, code) for a capture session — and is written
// into its id, so a lookup by id, by key or by page token takes one lock.
// A session with routes on other numbers is indexed under each of them too,
// in the shard of that number's match key; it changes only with all those
// shards locked (routes.go).
//
// Every state change is a Record. An operation computes its records under
// the shard lock, applies them with the same apply function that recovery
// replays, queues them on the Journal (still under the lock, so the journal
// sees each shard's changes in order) and returns only once the journal says
// they are durable. The events the change makes (a final status, an
// unmatched message) enter the event table in the same step, with the same
// journal call (events.go).
package memstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

const numShards = 64

// Journal makes records durable.
type Journal interface {
	// Append queues records, in order, and returns their commit, whose
	// Wait blocks until they are durable. Append is called with a shard
	// lock held: it must not block on I/O. A record's strings may share
	// memory with other records' (a verification's ID is cut from a
	// shard's chunk of ids): a journal that keeps records long after they
	// are durable clones what it keeps.
	Append(recs ...Record) Commit
}

// Commit is a journal's promise for appended records.
type Commit interface {
	// Wait returns once the records are durable, or why they never will be.
	Wait() error
}

// NoJournal keeps nothing: records are applied in memory only.
type NoJournal struct{}

// isNoJournal reports whether j keeps nothing, by its type alone (an
// interface comparison costs a call on every step).
func isNoJournal(j Journal) bool {
	_, ok := j.(NoJournal)
	return ok
}

type committed struct{}

func (committed) Wait() error { return nil }

// Append implements Journal.
func (NoJournal) Append(...Record) Commit { return committed{} }

// Options configure a Store.
type Options struct {
	Journal     Journal          // nil: NoJournal
	Now         func() time.Time // nil: time.Now
	MaxAttempts int              // default for sessions; 3 when 0
	CodeLength  int              // digits of generated codes; 6 when 0
	Retention   time.Duration    // finished sessions are dropped after this; 24h when 0
	// CaptureGuessesPerHour bounds, per sender, the messages tried against
	// capture sessions, matched or not; 0: unlimited.
	CaptureGuessesPerHour int
	// EventMaxAge bounds the age of the final-status events found
	// undelivered when a durable store opens (after a restart): older ones
	// are no longer claimed. 24h when 0.
	EventMaxAge time.Duration
}

// Store is the memory store. Its methods are safe for concurrent use.
type Store struct {
	opt     Options
	shards  [numShards]shard
	idem    [numShards]idemShard
	dedupe  dedupe
	parts   partials
	events  events
	pending pendingCounts
	guesses guessBudget
	senders senderCounts
	durable *durable       // nil for an in-memory matcher
	wal     *walJournal    // the journal when it is the WAL: called directly
	tap     func([]Record) // tests: sees every record journaled
}

var _ matcher.Store = (*Store)(nil)

// journal appends records and moves the events their step made on the
// locked shard sh (nil: none) into the event table, with the commit. The
// WAL journal is called directly (no interface call, so the records stay
// on the caller's stack); other journals get a copy.
func (m *Store) journal(sh *shard, recs ...Record) Commit {
	if !m.keepsRecords() {
		return m.journalNow(sh, recs...)
	}
	if m.tap != nil {
		m.tap(slices.Clone(recs)) // a copy: recs stays on the caller's stack
	}
	var c Commit
	if m.wal != nil {
		c = m.wal.Append(recs...)
	} else {
		buf := make([]Record, len(recs))
		copy(buf, recs)
		for i := range buf {
			buf[i].sess = nil // the live session: not the journal's to keep
		}
		c = m.opt.Journal.Append(buf...)
	}
	m.addFresh(sh, c)
	return c
}

// keepsRecords reports whether records journaled are kept past the journal
// call: by a journal other than the WAL (and NoJournal), or by the test
// tap. Otherwise journalNow takes them.
func (m *Store) keepsRecords() bool {
	return m.tap != nil || m.wal == nil && !isNoJournal(m.opt.Journal)
}

// journalNow is journal where !keepsRecords: the WAL encodes the records
// before it returns, NoJournal ignores them, so they may point into the
// caller's stack (create's Session does).
func (m *Store) journalNow(sh *shard, recs ...Record) Commit {
	var c Commit = committed{}
	if m.wal != nil {
		c = m.wal.Append(recs...)
	}
	m.addFresh(sh, c)
	return c
}

// addFresh moves the events of the step on the locked shard sh (nil:
// none) into the event table, with c, the step's commit.
func (m *Store) addFresh(sh *shard, c Commit) {
	if sh != nil && len(sh.fresh) > 0 {
		m.events.addSessions(sh.fresh, c) // clears the entries
		sh.fresh = sh.fresh[:0]
	}
}

type pairKey struct{ to, from string }

type shard struct {
	mu        sync.Mutex
	byID      idIndex                        // every session, by id
	byPair    pairIndex                      // pending expected-sender sessions
	byCode    map[string]map[string]*session // to -> code -> pending capture session
	byToken   idIndex                        // every session, by page token
	timers    timerHeap                      // expiries of pending sessions
	lastPurge time.Time                      // last pass for finished sessions past retention
	watch     map[[16]byte][]chan struct{}
	fresh     []*session // made final by the step in progress: their events go to the event table (journal)
	// The pending counter of the number this shard last counted for
	// (pendingCounts.add): sessions come on a few numbers, and a match finds its
	// number's counter here with one comparison where the counts' map
	// took a lookup. Counters are never removed, so it stays good.
	pendTo string
	pendC  *atomic.Int64
	ids    idArena // the ids of the verifications made under the shard's lock
}

type idemShard struct {
	mu sync.Mutex
	m  map[string]string // key name + "\x00" + Idempotency-Key -> session id
}

// New returns an empty matcher.
func New(o Options) *Store {
	if o.Journal == nil {
		o.Journal = NoJournal{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = matcher.DefaultMaxAttempts
	}
	if o.CodeLength == 0 {
		o.CodeLength = matcher.DefaultCodeLength
	}
	if o.Retention == 0 {
		o.Retention = matcher.DefaultRetention
	}
	m := &Store{opt: o}
	m.guesses.perHour, m.guesses.senders = float64(o.CaptureGuessesPerHour), map[string]*guessBucket{}
	for i := range m.shards {
		s := &m.shards[i]
		s.byCode, s.byToken.token = map[string]map[string]*session{}, true
		s.watch = map[[16]byte][]chan struct{}{}
		m.idem[i].m = map[string]string{}
	}
	m.dedupe.init(o.Retention)
	m.parts.m = map[string]*partial{}
	m.events.init()
	return m
}

// fnv32 is FNV-1a over a, then b, each followed by the byte 0xff: shard
// placement is written into ids and must not change between processes.
func fnv32(a, b string) uint32 { return fnvEnd(fnvAdd(fnvEnd(fnvAdd(fnvOffset, a)), b)) }

func fnv32b(to string, code []byte) uint32 {
	return fnv32(to, unsafe.String(unsafe.SliceData(code), len(code))) //nolint:gosec // G103: code is only read, within this call
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// fnvAdd is FNV-1a state h after the bytes of s, four a step: a step's
// loop overhead paid once for four multiplications (the same result as a
// byte at a time; TestFNVUnrolled). The step indexes s where slicing it
// (s = s[4:]) cost five more instructions a step, and i < len(s)-3
// leaves the compiler no bounds to check.
func fnvAdd(h uint32, s string) uint32 {
	i := 0
	for ; i < len(s)-3; i += 4 {
		h = (h ^ uint32(s[i])) * fnvPrime
		h = (h ^ uint32(s[i+1])) * fnvPrime
		h = (h ^ uint32(s[i+2])) * fnvPrime
		h = (h ^ uint32(s[i+3])) * fnvPrime
	}
	for ; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

// fnvEnd adds the byte 0xff that ends a part.
func fnvEnd(h uint32) uint32 { return (h ^ 0xff) * fnvPrime }

// fnvNumber is the FNV-1a state after the part to, a receiving number:
// the first half of its pairs' shard hash (pairShardAt), and what the
// pair's hash in the shard's index takes of the number (pairHashAt), so
// that a message's number is hashed once for both.
func fnvNumber(to string) uint32 { return fnvEnd(fnvAdd(fnvOffset, to)) }

// pairShardAt is pairShard for a number of state ht (fnvNumber).
func pairShardAt(ht uint32, from string) int { return int(fnvEnd(fnvAdd(ht, from)) % numShards) }

func pairShard(to, from string) int        { return pairShardAt(fnvNumber(to), from) }
func codeShard(to string, code []byte) int { return int(fnv32b(to, code) % numShards) }

// Create makes a pending session and returns it once durable. With an
// Idempotency-Key already used by the same API key it returns the first
// session (replayed = true) or ErrIdempotencyReused when the request differs.
// A pending expected-sender session of the same API key, sender and number
// is cancelled as superseded; other keys' sessions are left alone. A capture
// session's code is always generated (ErrCodeNotAllowed otherwise), at
// least MinCaptureCodeLen digits.
func (m *Store) Create(ctx context.Context, req matcher.CreateRequest) (matcher.Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Session{}, false, err
	}
	s, replayed, err := m.createOnce(req)
	return s, replayed, storeErr(err)
}

// createOnce is Create, once per Idempotency-Key.
func (m *Store) createOnce(req matcher.CreateRequest) (s matcher.Session, replayed bool, err error) {
	if req.IdemKey != "" {
		is := &m.idem[fnv32(req.Key, req.IdemKey)%numShards]
		is.mu.Lock()
		defer is.mu.Unlock()
		if id, ok := is.m[req.Key+"\x00"+req.IdemKey]; ok {
			old, err := m.get(id)
			if err != nil {
				return matcher.Session{}, false, err
			}
			if old.ReqHash != req.ReqHash {
				return matcher.Session{}, false, matcher.ErrIdempotencyReused
			}
			return old, true, nil
		}
		defer func() {
			if err == nil { // s.ID's own copy: it shares its allocation with the page token (newIDs)
				is.m[req.Key+"\x00"+req.IdemKey] = strings.Clone(s.ID)
			}
		}()
	}
	if req.Number == "" && req.Code != "" {
		return matcher.Session{}, false, matcher.ErrCodeNotAllowed
	}
	generated := req.Code == ""
	length := m.opt.CodeLength
	if req.Number == "" {
		length = max(length, matcher.MinCaptureCodeLen)
	}
	for try := 0; ; try++ {
		code := req.Code
		if generated {
			code = randomDigits(length)
		}
		s, err = m.create(req, code)
		if errors.Is(err, matcher.ErrCodeInUse) && generated && try < 20 {
			continue
		}
		return s, false, err
	}
}

func (m *Store) create(req matcher.CreateRequest, code string) (matcher.Session, error) {
	norm, ok := text.NormalizeCode(code)
	if !ok {
		return matcher.Session{}, matcher.ErrInvalidCode
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
		return matcher.Session{}, fmt.Errorf("matcher: unknown id prefix %q", prefix)
	}
	routes, err := matcher.CreateRoutes(req)
	if err != nil {
		return matcher.Session{}, err
	}
	now := m.opt.Now().UTC()
	attempts := req.MaxAttempts
	if attempts == 0 {
		attempts = m.opt.MaxAttempts
	}
	id, token := newIDs(prefix, idx)
	// v stays on the stack (some 550 bytes a create, garbage at once): see
	// the records below.
	v := &matcher.Session{
		ID: id, Key: req.Key, API: req.API, Number: req.Number, Code: code, To: req.To,
		Country: req.Country, Language: req.Language, Callback: req.Callback, Redirect: req.Redirect,
		Metadata: req.Metadata, PageToken: token, IdemKey: req.IdemKey, ReqHash: req.ReqHash,
		MaxAttempts: attempts, CreatedAt: now, ExpiresAt: now.Add(req.TTL), Routes: routes, ClientCountry: req.ClientCountry,
	}
	sess, ok := fromView(v)
	if !ok {
		return matcher.Session{}, fmt.Errorf("matcher: max_attempts %d out of range", attempts)
	}
	// Under the shards of every number of the new session's routes (and of
	// the sessions it supersedes): a capture code pending on any of them is
	// in use; the key's pending session for the same sender on any of them
	// is superseded.
	var oldBuf [2]*session // the sessions superseded: rarely more than one
	olds, inUse := oldBuf[:0], false
	held := m.lockPlan(sess.shardsOf(), func() uint64 {
		olds, inUse = olds[:0], false
		var need uint64
		for i := range sess.numCount() {
			num, ix := sess.routeNumber(i), &m.shards[sess.shardAt(i)]
			if req.Number == "" {
				if old := ix.byCode[num][norm]; old != nil && old.expires > now.UnixNano() {
					inUse = true
				}
				continue
			}
			for old := ix.byPair.get(num, req.Number); old != nil; old = old.nextOn(num) {
				if old.key == req.Key { // at most one per key: a pair keeps one pending session per key
					if !slices.Contains(olds, old) {
						olds = append(olds, old)
						need |= old.shardsOf()
					}
					break
				}
			}
		}
		return need
	})
	if inUse {
		m.unlockMask(held)
		return matcher.Session{}, matcher.ErrCodeInUse
	}
	sh := &m.shards[idx]
	// The records: the superseded sessions' cancels, then the create. No
	// record holding v may reach the heap, or the compiler moves v there
	// (TestCreateAllocs): the create record holds v only in all, an array,
	// which journalNow (the WAL, NoJournal) reads before it returns; a
	// journal or tap that keeps records, or more cancels than all holds,
	// get a create record holding a copy of v. cancels, which may grow on
	// the heap, never holds v.
	var cbuf [1]Record
	cancels := cbuf[:0]
	for _, old := range olds {
		r := Record{Op: OpCancel, At: now, ID: old.idString(), Reason: matcher.ReasonSuperseded}
		m.applyTo(sh, old, r)
		cancels = append(cancels, r)
	}
	m.insert(sh, sess) // apply of the create record, which holds sess
	var c Commit
	if len(cancels) <= len(cbuf) && !m.keepsRecords() {
		var all [len(cbuf) + 1]Record
		n := copy(all[:], cancels)
		all[n] = Record{Op: OpCreate, At: now, ID: v.ID, Session: v, sess: sess}
		c = m.journalNow(sh, all[:n+1]...)
	} else {
		kept := *v
		c = m.journal(sh, append(cancels, Record{Op: OpCreate, At: now, ID: v.ID, Session: &kept, sess: sess})...)
	}
	m.unlockMask(held)
	if err := c.Wait(); err != nil {
		return matcher.Session{}, err
	}
	return *v, nil
}

// randomDigits returns n uniformly random decimal digits from crypto/rand
// (takeDigits): for n up to 55, one read makes the code but when more than
// n/8+2 of its bytes are skipped (each is with probability 6/256); a longer
// code takes a read per 64 bytes.
func randomDigits(n int) string {
	out := make([]byte, n)
	var src [64]byte
	for done := 0; done < n; {
		need := n - done
		b := src[:min(need+need/8+2, len(src))]
		_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
		done += takeDigits(out[done:], b)
	}
	return string(out)
}

// takeDigits writes into dst, in order, a digit for each byte of src below
// 250 (25 times 10), the byte modulo 10, skipping the others, until dst is
// full: uniform digits from uniform bytes. It returns the digits written.
func takeDigits(dst, src []byte) int {
	n := 0
	for _, b := range src {
		if n == len(dst) {
			break
		}
		if b < 250 {
			dst[n] = '0' + b%10
			n++
		}
	}
	return n
}

// LookupIdempotent returns the session an API key created with an
// Idempotency-Key, if it is still held.
func (m *Store) LookupIdempotent(ctx context.Context, key, idemKey string) (matcher.Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Session{}, false, err
	}
	is := &m.idem[fnv32(key, idemKey)%numShards]
	is.mu.Lock()
	id, ok := is.m[key+"\x00"+idemKey]
	is.mu.Unlock()
	if !ok {
		return matcher.Session{}, false, nil
	}
	s, err := m.get(id)
	return s, err == nil, nil
}

// lookup finds a session by id and calls fn with it under its shard's lock.
func (m *Store) lookup(id string, fn func(sh *shard, s *session)) bool {
	prefix, raw, ok := parseID(id)
	if !ok {
		return false
	}
	sh := &m.shards[raw[0]]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.byID.get(raw)
	if s == nil || !s.isID(prefix, id) {
		return false
	}
	fn(sh, s)
	return true
}

// Get returns a copy of the session. A pending session past its expiry is
// reported as expired even before the sweeper records it.
func (m *Store) Get(ctx context.Context, id string) (matcher.Session, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Session{}, err
	}
	return m.get(id)
}

func (m *Store) get(id string) (matcher.Session, error) {
	var out matcher.Session
	if !m.lookup(id, func(_ *shard, s *session) { out = s.view() }) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	return m.view(out), nil
}

// ByPageToken returns the session whose hosted page token is token.
func (m *Store) ByPageToken(ctx context.Context, token string) (matcher.Session, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Session{}, err
	}
	raw, ok := parseToken(token)
	if !ok {
		return matcher.Session{}, matcher.ErrNotFound
	}
	sh := &m.shards[raw[0]]
	sh.mu.Lock()
	s := sh.byToken.get(raw)
	var out matcher.Session
	if s != nil {
		out = s.view()
	}
	sh.mu.Unlock()
	if s == nil {
		return matcher.Session{}, matcher.ErrNotFound
	}
	return m.view(out), nil
}

// PendingFor returns the pending sessions that expect a message from sender
// on each of tos (on any of their routes), of every API key: in the order
// of tos, oldest first per number, each session once.
func (m *Store) PendingFor(ctx context.Context, sender string, tos []string) ([]matcher.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []matcher.Session
	for _, to := range tos {
		for _, s := range m.pendingFor(to, sender) {
			if !slices.ContainsFunc(out, func(o matcher.Session) bool { return o.ID == s.ID }) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

// pendingFor returns the pending sessions of the pair (to, sender), of
// every API key, oldest first.
func (m *Store) pendingFor(to, sender string) []matcher.Session {
	sh := &m.shards[pairShard(to, sender)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	now := m.opt.Now().UnixNano()
	var out []matcher.Session
	for s := sh.byPair.get(to, sender); s != nil; s = s.nextOn(to) {
		if now < s.expires {
			out = append(out, s.view())
		}
	}
	return out
}

func (m *Store) view(s matcher.Session) matcher.Session {
	if s.Status == matcher.Pending && !m.opt.Now().Before(s.ExpiresAt) {
		s.Status, s.FinishedAt, s.Reason = matcher.Expired, s.ExpiresAt, matcher.ReasonExpired
	}
	return s
}

// Cancel cancels a pending session.
func (m *Store) Cancel(ctx context.Context, id string) (matcher.Session, error) {
	if err := ctx.Err(); err != nil {
		return matcher.Session{}, err
	}
	s, err := m.cancel(id)
	return s, storeErr(err)
}

func (m *Store) cancel(id string) (matcher.Session, error) {
	var out matcher.Session
	var c Commit
	notPending := false
	found := m.lockSession(id, func(sh *shard, s *session) {
		now := m.opt.Now().UTC()
		if s.status != matcher.Pending || now.UnixNano() >= s.expires {
			out, notPending = s.view(), true
			return
		}
		r := Record{Op: OpCancel, At: now, ID: id, Reason: matcher.ReasonCancelledByAPI}
		m.applyTo(sh, s, r)
		out = s.view()
		c = m.journal(sh, r)
	})
	switch {
	case !found:
		return matcher.Session{}, matcher.ErrNotFound
	case notPending:
		return m.view(out), matcher.ErrNotPending
	}
	if err := c.Wait(); err != nil {
		return matcher.Session{}, err
	}
	return out, nil
}

// Len returns the number of sessions held, pending or finished.
func (m *Store) Len() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += m.shards[i].byID.len()
		m.shards[i].mu.Unlock()
	}
	return n
}
