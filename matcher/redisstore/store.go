package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
// call, retrying a generated capture code that is in use.
func (s *Store) create(ctx context.Context, req matcher.CreateRequest, id string) (matcher.Session, bool, error) {
	tag := tagOf(req.To)
	if err := s.register(ctx, tag); err != nil {
		return matcher.Session{}, false, err
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
			Max: attempts, Created: ms(now), Expires: ms(now.Add(req.TTL)),
		}
		b, err := json.Marshal(w)
		if err != nil {
			return matcher.Session{}, false, fmt.Errorf("redisstore: encode session: %w", err)
		}
		v, err := s.call(ctx, "create", keyArgs{tag: tag}, string(b), ms(now))
		if err != nil {
			return matcher.Session{}, false, err
		}
		r, err := replyStrings(v, 3)
		if err != nil {
			return matcher.Session{}, false, unavailable(fmt.Errorf("create: %w", err))
		}
		status, sess, superseded := r[0], r[1], r[2]
		switch status {
		case "ok", "exists":
			out, err := s.decode(sess, id)
			if superseded != "" {
				s.signal()
			}
			if err == nil && status == "exists" {
				err = s.confirm(ctx, tag) // the function wrote nothing for its WAIT to count
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
// to \0 sender \0 seq \0 id), oldest first, then their records. KEYS are
// pendingFunc's (the number's pairs and s); ARGV[1] is "to \0 sender \0".
// It only reads, so it is a plain script (EVALSHA_RO), not part of the
// versioned library.
var pendingScript = redis.NewScript(luaKeyHeader(pendingFunc) + pendingBody)

const pendingBody = `
local p = ARGV[1]
local members = redis.call('ZRANGEBYLEX', KEYS[PENDING_PAIRS], '[' .. p, '(' .. p:sub(1, -2) .. '\1')
if #members == 0 then return {} end
local ids = {}
for i, m in ipairs(members) do
  local rest = m:sub(#p + 1)
  ids[i] = rest:sub(rest:find('\0', 1, true) + 1)
end
return redis.call('HMGET', KEYS[PENDING_S], unpack(ids))
`

// PendingFor returns the pending sessions that expect a message from sender
// on each number of tos, in the order of tos, oldest first per number: one
// pipeline of one script call per number, so one round trip (on Cluster,
// go-redis sends the pipeline's calls to their nodes in parallel). A node
// without the script (a restart, a failover) gets it loaded and the
// pipeline runs once more.
func (s *Store) PendingFor(ctx context.Context, sender string, tos []string) ([]matcher.Session, error) {
	if len(tos) == 0 {
		return nil, nil
	}
	ctx, cancel := s.timeout(ctx)
	defer cancel()
	run := func() ([]*redis.Cmd, error) {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(tos))
		for i, to := range tos {
			keys, err := s.k.keys(pendingFunc, keyArgs{tag: tagOf(to)})
			if err != nil {
				return nil, err
			}
			cmds[i] = pendingScript.EvalShaRO(ctx, pipe, keys, to+"\x00"+sender+"\x00")
		}
		_, err := pipe.Exec(ctx)
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err := pendingScript.Load(ctx, s.rdb).Err(); err != nil {
			return nil, unavailable(err)
		}
		cmds, err = run()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	var out []matcher.Session
	for _, cmd := range cmds {
		v, err := cmd.Result()
		if err != nil {
			return nil, unavailable(err)
		}
		recs, found, err := replyOptStrings(v)
		if err != nil {
			return nil, unavailable(fmt.Errorf("pending: %w", err))
		}
		for i, j := range recs {
			if !found[i] {
				continue // finished and purged meanwhile
			}
			v, err := s.decode(j, "")
			if err != nil {
				return nil, err
			}
			if v.Status == matcher.Pending {
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
