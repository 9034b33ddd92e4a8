package redisstore

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Baseline keeps expected-sender sessions in Redis the way a team would
// first write it: the hot path only — create, and an atomic consume in a
// Lua script. It is the baseline that `mogate bench` measures the
// WAL-backed matcher against, not a Store (substring matching, no capture
// mode, attempts, idempotency keys or events).
type Baseline struct {
	rdb *redis.Client
}

// NewBaseline returns a baseline store on rdb.
func NewBaseline(rdb *redis.Client) *Baseline { return &Baseline{rdb: rdb} }

// Create stores a pending session: a hash for the session and the
// (to, from) match key pointing at it, both expiring with the TTL.
func (s *Baseline) Create(ctx context.Context, id, to, from, code string, ttl time.Duration) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, "mogate:s:"+id, "to", to, "from", from, "code", code, "status", "pending")
		p.Expire(ctx, "mogate:s:"+id, ttl)
		p.Set(ctx, "mogate:p:"+to+":"+from, id, ttl)
		return nil
	})
	return err
}

// consume verifies the session keyed by (to, from) when the text holds its
// code, atomically: the session is verified at most once.
var consume = redis.NewScript(`
local id = redis.call('GET', KEYS[1])
if not id then return false end
local key = 'mogate:s:' .. id
local code = redis.call('HGET', key, 'code')
if not code or not string.find(ARGV[1], code, 1, true) then return false end
redis.call('HSET', key, 'status', 'verified', 'verified_number', ARGV[2], 'message_id', ARGV[3])
redis.call('DEL', KEYS[1])
return id
`)

// ErrNoMatch is returned by Consume when nothing matched.
var ErrNoMatch = errors.New("redisstore: no matching session")

// Consume matches a message from from to to: the id of the verified session,
// or ErrNoMatch. The text match is a substring test: enough for a baseline,
// not mogate's token rules.
func (s *Baseline) Consume(ctx context.Context, to, from, text, messageID string) (string, error) {
	v, err := consume.Run(ctx, s.rdb, []string{"mogate:p:" + to + ":" + from}, text, from, messageID).Text()
	if errors.Is(err, redis.Nil) {
		return "", ErrNoMatch
	}
	return v, err
}

// Status returns a session's status ("" when there is none).
func (s *Baseline) Status(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.HGet(ctx, "mogate:s:"+id, "status").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}
