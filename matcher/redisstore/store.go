package redisstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/text"
)

// registerNumbers lists the tags of the pool's numbers in P:tags.
func (s *Store) registerNumbers(ctx context.Context) error {
	for _, n := range s.opt.Numbers {
		if err := s.register(ctx, tagOf(n)); err != nil {
			return err
		}
	}
	return nil
}

// register adds tag to P:tags, once per process: the sweeper, event
// claims and counts find the number's keys through it. It runs before the
// first write to the tag, so no write is ever unlisted.
func (s *Store) register(ctx context.Context, tag string) error {
	if _, ok := s.tags.Load(tag); ok {
		return nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	k := s.k.tags()
	var cmd *redis.IntCmd
	werr := s.write(ctx, k, func(c redis.Cmdable) { cmd = c.SAdd(ctx, k, tag) })
	if err := s.written(ctx, cmd.Err(), werr); err != nil {
		return err
	}
	s.tags.Store(tag, true)
	if _, ok := s.tagKeys.Load(tag); !ok {
		s.tagKeys.Store(tag, s.k.tagKeysOf(tag))
	}
	return nil
}

// Create makes a pending session (the rules of matcher.CreateRequest).
//
// An Idempotency-Key lives in its own slot, so it is claimed first and the
// session created second. The claim, SET NX with the retention, names the
// session id to be, the receiving number and the request hash. Whoever
// finds a claim with the same request hash reads that session; when it
// does not exist yet (the claimer is still creating it, or died before),
// the finder creates it under the claimed id itself — only while the claim
// is young (two call deadlines): an old claim without its session is one
// whose session was dropped past the retention, and is replaced, so a
// finished id never comes back as pending. The create function makes a
// given id once and returns the existing session to a second caller, so
// racing replicas and a dead claimer all end with one session. A create
// refused for its content releases the claim (compare-and-delete).
func (s *Store) Create(ctx context.Context, req matcher.CreateRequest) (matcher.Session, bool, error) {
	if req.Number == "" && req.Code != "" {
		return matcher.Session{}, false, matcher.ErrCodeNotAllowed
	}
	if req.Code != "" {
		if _, ok := text.NormalizeCode(req.Code); !ok {
			return matcher.Session{}, false, matcher.ErrInvalidCode
		}
	}
	routes, err := matcher.CreateRoutes(req)
	if err != nil {
		return matcher.Session{}, false, err
	}
	req.Routes = routes
	if req.IDPrefix == "" {
		req.IDPrefix = defaultPre
	}
	if !matcher.ValidIDPrefix(req.IDPrefix) {
		return matcher.Session{}, false, fmt.Errorf("redisstore: unknown id prefix %q", req.IDPrefix)
	}
	id := newID(req.IDPrefix, tagOf(req.To))
	if req.IdemKey == "" {
		return s.create(ctx, req, id)
	}
	ik := s.k.idem(req.Key, req.IdemKey)
	claim := id + "\x00" + req.To + "\x00" + req.ReqHash + "\x00" + strconv.FormatInt(ms(s.opt.Now()), 10)
	for try := 0; ; try++ {
		if try == 3 {
			return matcher.Session{}, false, unavailable(errors.New("idempotency key keeps changing"))
		}
		cctx, cancel := s.timeout(ctx)
		var cmd *redis.BoolCmd
		werr := s.write(cctx, ik, func(c redis.Cmdable) { cmd = c.SetNX(cctx, ik, claim, s.opt.Retention) })
		ok, err := cmd.Result()
		err = s.written(cctx, err, werr)
		cancel()
		if err != nil {
			return matcher.Session{}, false, err
		}
		if ok {
			sess, replayed, err := s.create(ctx, req, id)
			if err != nil && !errors.Is(err, matcher.ErrUnavailable) {
				if _, rerr := s.call(ctx, "idem_release", keyArgs{apiKey: req.Key, idemKey: req.IdemKey}, claim); rerr != nil {
					s.log.Warn("redis: idempotency claim not released", "err", rerr)
				}
			}
			return sess, replayed, err
		}
		cctx, cancel = s.timeout(ctx)
		cur, err := s.rdb.Get(cctx, ik).Result()
		cancel()
		if errors.Is(err, redis.Nil) {
			continue // released or expired meanwhile: claim again
		}
		if err != nil {
			return matcher.Session{}, false, unavailable(err)
		}
		parts := strings.SplitN(cur, "\x00", 4)
		if len(parts) != 4 || parts[2] != req.ReqHash {
			return matcher.Session{}, false, matcher.ErrIdempotencyReused
		}
		if sess, err := s.Get(ctx, parts[0]); !errors.Is(err, matcher.ErrNotFound) {
			if err == nil && sess.Status == matcher.Pending && sess.Number != "" {
				// The first try may have stopped before it superseded
				// the sender's sessions homed elsewhere: create repeats
				// those steps for the session it finds.
				req.To = parts[1]
				return s.create(ctx, req, parts[0])
			}
			if err == nil {
				err = s.confirm(ctx, tagOf(sess.To))
			}
			return sess, err == nil, err
		}
		if at, _ := strconv.ParseInt(parts[3], 10, 64); ms(s.opt.Now())-at > 2*s.opt.Timeout.Milliseconds() {
			// Stale: its session is gone. Replace the claim.
			if _, err := s.call(ctx, "idem_release", keyArgs{apiKey: req.Key, idemKey: req.IdemKey}, cur); err != nil {
				return matcher.Session{}, false, err
			}
			continue
		}
		req.To = parts[1]
		return s.create(ctx, req, parts[0])
	}
}

// create runs the create function: index, supersede and counters in one
// call, retrying a generated capture code that is in use. A session whose
// routes name numbers of other tags is linked there first (link: the
// capture code reserved, the sender's sessions there superseded), and the
// sessions of other homes it supersedes are cancelled last: these steps
// are separate calls, each safe to repeat. For a session that exists and
// is still pending (an idempotent retry) they run again, the session
// unchanged.
func (s *Store) create(ctx context.Context, req matcher.CreateRequest, id string) (matcher.Session, bool, error) {
	tag := tagOf(req.To)
	if err := s.register(ctx, tag); err != nil {
		return matcher.Session{}, false, err
	}
	nums := matcher.RouteNumbers(req.Routes)
	foreign := map[string][]string{} // tag -> its route numbers, but the home's
	for _, n := range nums {
		if t := tagOf(n); t != tag {
			foreign[t] = append(foreign[t], n)
		}
	}
	ftags := slices.Sorted(maps.Keys(foreign))
	for _, t := range ftags {
		if err := s.register(ctx, t); err != nil {
			return matcher.Session{}, false, err
		}
	}
	generated := req.Code == ""
	length := s.opt.CodeLength
	if req.Number == "" {
		length = max(length, matcher.MinCaptureCodeLen)
	}
	attempts := req.MaxAttempts
	if attempts == 0 {
		attempts = s.opt.MaxAttempts
	}
	for try := 0; ; try++ {
		code := req.Code
		if generated {
			code = randomDigits(length)
		}
		norm, _ := text.NormalizeCode(code)
		now := s.opt.Now().UTC().Truncate(time.Millisecond)
		w := wire{
			ID: id, Key: req.Key, API: req.API, Number: req.Number, Code: code, Norm: norm, To: req.To,
			Country: req.Country, Language: req.Language, Callback: req.Callback, Redirect: req.Redirect,
			Metadata: req.Metadata, PageToken: newID(tokenPref, tag), IdemKey: req.IdemKey, ReqHash: req.ReqHash,
			Max: attempts, Created: ms(now), Expires: ms(now.Add(req.TTL)), ClientCountry: req.ClientCountry,
		}
		for _, r := range req.Routes {
			w.Routes = append(w.Routes, wireRoute{Channel: r.Channel, To: r.To})
		}
		homes := map[string]bool{}
		superseded := false
		inUse := false
		for _, t := range ftags {
			la := linkArgs{Home: tag, ID: id, Key: req.Key, Number: req.Number, Norm: norm, Expires: w.Expires,
				Now: ms(now), Tos: foreign[t], All: nums}
			st, n, more, err := s.link(ctx, t, la)
			if err != nil {
				return matcher.Session{}, false, err
			}
			if st == "code_in_use" {
				inUse = true
				break
			}
			superseded = superseded || n > 0
			for _, h := range more {
				homes[h] = true
			}
		}
		if inUse {
			if generated && try < 20 {
				continue
			}
			return matcher.Session{}, false, matcher.ErrCodeInUse
		}
		b, err := json.Marshal(w)
		if err != nil {
			return matcher.Session{}, false, fmt.Errorf("redisstore: encode session: %w", err)
		}
		args := make([]any, 0, 8+len(nums))
		args = append(args, b, w.Created, id, req.Key, req.Number, norm, w.PageToken, w.Expires)
		for _, n := range nums {
			args = append(args, n)
		}
		v, err := s.call(ctx, "create", keyArgs{tag: tag}, args...)
		if err != nil {
			return matcher.Session{}, false, err
		}
		r, err := replyStrings(v, 5)
		if err != nil {
			return matcher.Session{}, false, unavailable(fmt.Errorf("create: %w", err))
		}
		status, sess := r[0], r[1]
		switch status {
		case "ok", "exists":
			var out matcher.Session
			if status == "ok" {
				// The record is the one sent: no need to read it back.
				w.Seq, err = strconv.ParseInt(r[4], 10, 64)
				if err != nil {
					return matcher.Session{}, false, unavailable(fmt.Errorf("create: %w: seq %q", errReplyShape, r[4]))
				}
				out = w.session(s.opt.Now())
			} else {
				out, err = s.decode(sess, id)
			}
			superseded = superseded || r[2] != "0"
			if err == nil && req.Number != "" && (status == "ok" || out.Status == matcher.Pending) {
				err = s.supersedeElsewhere(ctx, r[3], homes, tag, foreign, req, id, norm, now, nums, &superseded)
			}
			if superseded {
				s.signal()
			}
			if err == nil && status == "exists" {
				err = s.confirm(ctx, tag) // the function wrote no session (at most a creation counter): the record read may not be replicated yet
			}
			return out, status == "exists", err
		case "code_in_use":
			if generated && try < 20 {
				continue
			}
			return matcher.Session{}, false, matcher.ErrCodeInUse
		}
		return matcher.Session{}, false, unavailable(fmt.Errorf("unexpected reply %q", status))
	}
}

// linkArgs are the arguments of the link function.
type linkArgs struct {
	Home    string   `json:"home"`
	ID      string   `json:"id"`
	Key     string   `json:"key"`
	Number  string   `json:"num"`
	Norm    string   `json:"norm"`
	Expires int64    `json:"exp"`
	Now     int64    `json:"now"`
	Tos     []string `json:"tos"`
	All     []string `json:"all"`
}

// link runs the link function in tag: status, how many sessions it
// superseded, and further home tags of the sender's sessions there.
func (s *Store) link(ctx context.Context, tag string, la linkArgs) (string, int, []string, error) {
	if la.Tos == nil {
		la.Tos = []string{}
	}
	b, err := json.Marshal(la)
	if err != nil {
		return "", 0, nil, fmt.Errorf("redisstore: encode link: %w", err)
	}
	v, err := s.call(ctx, "link", keyArgs{tag: tag}, string(b))
	if err != nil {
		return "", 0, nil, err
	}
	r, err := replyStrings(v, 3)
	if err != nil {
		return "", 0, nil, unavailable(fmt.Errorf("link: %w", err))
	}
	homes, err := decodeTags(r[2])
	if err != nil {
		return "", 0, nil, unavailable(fmt.Errorf("link: %w", err))
	}
	n, _ := strconv.Atoi(r[1])
	return r[0], n, homes, nil
}

// supersedeElsewhere cancels the sessions the new one supersedes in home
// tags other than its own and its route numbers' (which create and link
// did): those the links named.
func (s *Store) supersedeElsewhere(ctx context.Context, created string, homes map[string]bool, tag string, foreign map[string][]string,
	req matcher.CreateRequest, id, norm string, now time.Time, nums []string, superseded *bool) error {
	more, err := decodeTags(created)
	if err != nil {
		return unavailable(fmt.Errorf("create: %w", err))
	}
	for _, h := range more {
		homes[h] = true
	}
	for _, h := range slices.Sorted(maps.Keys(homes)) {
		if _, done := foreign[h]; done || h == tag {
			continue
		}
		_, n, _, err := s.link(ctx, h, linkArgs{Home: tag, ID: id, Key: req.Key, Number: req.Number, Norm: norm, Now: ms(now), All: nums})
		if err != nil {
			return err
		}
		*superseded = *superseded || n > 0
	}
	return nil
}

// decodeTags reads a JSON list of tags (an empty Lua table encodes as {}).
func decodeTags(j string) ([]string, error) {
	if j == "{}" || j == "[]" {
		return nil, nil
	}
	var tags []string
	if err := json.Unmarshal([]byte(j), &tags); err != nil {
		return nil, fmt.Errorf("%w: tags %q", errReplyShape, j)
	}
	for _, t := range tags {
		if b, err := hex.DecodeString(t); err != nil || len(b) != 4 {
			return nil, fmt.Errorf("%w: tag %q", errReplyShape, t)
		}
	}
	return tags, nil
}

// decode reads a session record; id, when set, is the session's id. A
// record without the fields every session has is an error, never a zero
// session.
func (s *Store) decode(j, id string) (matcher.Session, error) {
	var w wire
	if err := json.Unmarshal([]byte(j), &w); err != nil {
		return matcher.Session{}, unavailable(fmt.Errorf("bad session record: %w", err))
	}
	switch {
	case w.ID == "" || w.To == "":
		return matcher.Session{}, unavailable(errors.New("bad session record: no id or to"))
	case id != "" && w.ID != id:
		return matcher.Session{}, unavailable(fmt.Errorf("bad session record: %s is stored as %s", w.ID, id))
	}
	return w.session(s.opt.Now()), nil
}

// LookupIdempotent returns the session an API key created with an
// Idempotency-Key, if it is still held.
func (s *Store) LookupIdempotent(ctx context.Context, key, idem string) (matcher.Session, bool, error) {
	cctx, cancel := s.timeout(ctx)
	cur, err := s.rdb.Get(cctx, s.k.idem(key, idem)).Result()
	cancel()
	if errors.Is(err, redis.Nil) {
		return matcher.Session{}, false, nil
	}
	if err != nil {
		return matcher.Session{}, false, unavailable(err)
	}
	id, _, _ := strings.Cut(cur, "\x00")
	sess, err := s.Get(ctx, id)
	if errors.Is(err, matcher.ErrNotFound) {
		return matcher.Session{}, false, nil
	}
	if err == nil {
		err = s.confirm(ctx, tagOf(sess.To))
	}
	return sess, err == nil, err
}

// Get reads a session; a pending one past its expiry reads as expired.
func (s *Store) Get(ctx context.Context, id string) (matcher.Session, error) {
	tag, ok := tagOfID(id)
	if !ok || strings.HasPrefix(id, tokenPref) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	j, err := s.rdb.HGet(ctx, s.k.key(tag, keySessions), id).Result()
	if errors.Is(err, redis.Nil) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	if err != nil {
		return matcher.Session{}, unavailable(err)
	}
	return s.decode(j, id)
}

// pendingScript reads the pending sessions of one pair (to, sender) in one
// call: the pair's members of the pairs index (library.lua pairMember:
// to \0 sender \0 seq \0 id), oldest first, then their records, and the
// links of the pair to other home tags. KEYS are pendingFunc's (the
// number's pairs, s and links); ARGV[1] is "to \0 sender \0". It returns
// {records, links JSON or false}. It only reads, so it is a plain script
// (EVALSHA_RO), not part of the versioned library.
var pendingScript = redis.NewScript(luaKeyHeader(pendingFunc) + pendingBody)

const pendingBody = `
local p = ARGV[1]
local links = redis.call('HGET', KEYS[PENDING_LINKS], 'p\0' .. p:sub(1, -2))
local members = redis.call('ZRANGEBYLEX', KEYS[PENDING_PAIRS], '[' .. p, '(' .. p:sub(1, -2) .. '\1')
if #members == 0 then return {{}, links} end
local ids = {}
for i, m in ipairs(members) do
  local rest = m:sub(#p + 1)
  ids[i] = rest:sub(rest:find('\0', 1, true) + 1)
end
return {redis.call('HMGET', KEYS[PENDING_S], unpack(ids)), links}
`

// pendingQuery is one pending script call: a pair on a tag.
type pendingQuery struct{ to, tag string }

// pending runs the pending script for each query in one pipeline (on
// Cluster, go-redis sends the calls to their nodes in parallel). A node
// without the script (a restart, a failover) gets it loaded and the
// pipeline runs once more. It returns each query's pending sessions and
// linked home tags.
func (s *Store) pending(ctx context.Context, sender string, qs []pendingQuery) ([][]matcher.Session, [][]string, error) {
	run := func() ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(qs))
		for i, q := range qs {
			keys, err := s.k.keys(pendingFunc, keyArgs{tag: q.tag})
			if err != nil {
				return nil, err
			}
			cmds[i] = pendingScript.EvalShaRO(ctx, pipe, keys, q.to+"\x00"+sender+"\x00")
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := pendingScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, nil, unavailable(err)
		}
		cmds, err = run()
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, unavailable(err)
	}
	sessions, homes := make([][]matcher.Session, len(qs)), make([][]string, len(qs))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, unavailable(err)
		}
		l, err := replyArray(v, -1)
		if err != nil || len(l) < 1 || len(l) > 2 {
			return nil, nil, unavailable(fmt.Errorf("pending: %w", cmp.Or(err, errReplyShape)))
		}
		recs, found, err := replyOptStrings(l[0])
		if err != nil {
			return nil, nil, unavailable(fmt.Errorf("pending: %w", err))
		}
		for j, rec := range recs {
			if !found[j] {
				continue // finished and purged meanwhile
			}
			v, err := s.decode(rec, "")
			if err != nil {
				return nil, nil, err
			}
			if v.Status == matcher.Pending {
				sessions[i] = append(sessions[i], v)
			}
		}
		if len(l) == 2 && l[1] != nil {
			j, err := replyString(l[1])
			if err != nil {
				return nil, nil, unavailable(fmt.Errorf("pending links: %w", err))
			}
			var m map[string]int64
			if err := json.Unmarshal([]byte(j), &m); err != nil {
				return nil, nil, unavailable(fmt.Errorf("pending links: %w", err))
			}
			now := ms(s.opt.Now())
			for h, exp := range m {
				if exp > now && h != qs[i].tag {
					homes[i] = append(homes[i], h)
				}
			}
			slices.Sort(homes[i])
		}
	}
	return sessions, homes, nil
}

// PendingFor returns the pending sessions that expect a message from sender
// on each number of tos (by any route), in the order of tos, oldest first
// per number, each once: one round trip for the numbers' tags, and a second
// one only when a number links to sessions homed in other tags.
func (s *Store) PendingFor(ctx context.Context, sender string, tos []string) ([]matcher.Session, error) {
	if len(tos) == 0 {
		return nil, nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	qs := make([]pendingQuery, len(tos))
	for i, to := range tos {
		qs[i] = pendingQuery{to, tagOf(to)}
	}
	per, homes, err := s.pending(ctx, sender, qs)
	if err != nil {
		return nil, err
	}
	var more []pendingQuery
	var of []int
	for i, hs := range homes {
		for _, h := range hs {
			more = append(more, pendingQuery{tos[i], h})
			of = append(of, i)
		}
	}
	if len(more) > 0 {
		extra, _, err := s.pending(ctx, sender, more)
		if err != nil {
			return nil, err
		}
		for j, ss := range extra {
			per[of[j]] = append(per[of[j]], ss...)
		}
	}
	var out []matcher.Session
	seen := map[string]bool{}
	for _, ss := range per {
		slices.SortStableFunc(ss, func(a, b matcher.Session) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, v := range ss {
			if !seen[v.ID] {
				seen[v.ID] = true
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// ByPageToken returns the session of a hosted page token.
func (s *Store) ByPageToken(ctx context.Context, token string) (matcher.Session, error) {
	tag, ok := tagOfID(token)
	if !ok || !strings.HasPrefix(token, tokenPref) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	cctx, cancel := s.timeout(ctx)
	id, err := s.rdb.HGet(cctx, s.k.key(tag, keyTokens), token).Result()
	cancel()
	if errors.Is(err, redis.Nil) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	if err != nil {
		return matcher.Session{}, unavailable(err)
	}
	return s.Get(ctx, id)
}

// Cancel cancels a pending session.
func (s *Store) Cancel(ctx context.Context, id string) (matcher.Session, error) {
	tag, ok := tagOfID(id)
	if !ok || strings.HasPrefix(id, tokenPref) {
		return matcher.Session{}, matcher.ErrNotFound
	}
	v, err := s.call(ctx, "cancel", keyArgs{tag: tag}, id, ms(s.opt.Now()))
	if err != nil {
		return matcher.Session{}, err
	}
	r, err := replyStrings(v, 2)
	if err != nil {
		return matcher.Session{}, unavailable(fmt.Errorf("cancel: %w", err))
	}
	switch status, j := r[0], r[1]; status {
	case "not_found":
		return matcher.Session{}, matcher.ErrNotFound
	case "not_pending":
		sess, err := s.decode(j, id)
		if err != nil {
			return sess, err
		}
		return sess, matcher.ErrNotPending
	case "ok":
		s.signal()
		return s.decode(j, id)
	default:
		return matcher.Session{}, unavailable(fmt.Errorf("cancel: unexpected status %q", status))
	}
}

// SpendNonce records a provider request nonce for the retention window.
func (s *Store) SpendNonce(ctx context.Context, provider, nonce string) (bool, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	k := s.k.nonce(provider, nonce)
	var cmd *redis.BoolCmd
	werr := s.write(ctx, k, func(c redis.Cmdable) { cmd = c.SetNX(ctx, k, "1", s.opt.Retention) })
	fresh, err := cmd.Result()
	if err := s.written(ctx, err, werr); err != nil {
		return false, err
	}
	return fresh, nil
}

// PendingByNumber adds up the pending counters of every tag: O(numbers).
func (s *Store) PendingByNumber(ctx context.Context) (map[string]int, error) {
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	tags, err := s.rdb.SMembers(ctx, s.k.tags()).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(tags))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, t := range tags {
			cmds[i] = p.HGetAll(ctx, s.k.key(t, keyPending))
		}
		return nil
	})
	if err != nil {
		return nil, unavailable(err)
	}
	out := map[string]int{}
	for _, c := range cmds {
		for to, n := range c.Val() {
			var v int
			if _, err := fmt.Sscan(n, &v); err == nil && v > 0 {
				out[to] += v
			}
		}
	}
	return out, nil
}

// Client is the store's Redis client, for state the gateway shares across
// replicas beside sessions (its create rate limits).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// LimitPrefix begins the names of the keys the gateway keeps in Client
// (P:limit:), so they stay in the deployment's prefix.
func (s *Store) LimitPrefix() string { return s.k.limits() }
