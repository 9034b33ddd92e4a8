package memstore

import (
	"math/bits"
	"slices"

	"github.com/mogate/mogate/matcher"
)

// Routes in the memory store (docs/matching.md). A session is indexed
// under every number of its routes: an expected-sender session in the pair
// chain (number, sender) of shard pairShard(number, sender), a capture
// session under (number, code) in shard codeShard(number, code). Its home
// shard, written into its id, is the one of its first route's number (To).
//
// Locking: a pending session's state changes only while every shard that
// indexes it is locked (taken in ascending order, so two steps never wait
// on each other); any one of them is enough to read it. A finished session
// is indexed only in its home shard. A session with one route number (all
// sessions but those with routes on two numbers) needs its home shard
// alone, as before routes existed.

// setRoutes records the session's routes (nil: the default {sms, to}) and
// the numbers they index it under besides to.
func (s *session) setRoutes(routes []matcher.Route) {
	if len(routes) == 0 {
		return
	}
	x := s.extra()
	x.routes = routes
	// The distinct numbers, as matcher.RouteNumbers makes them, with no
	// slice of its own (recovery sets the routes of every session).
	for _, r := range routes {
		if r.To != s.to && !slices.Contains(x.nums, r.To) {
			x.nums = append(x.nums, r.To)
		}
	}
	if len(x.nums) > 0 {
		x.next = make([]*session, len(x.nums))
	}
}

// hasRoute reports whether a message on channel c to number to can prove s.
func (s *session) hasRoute(c, to string) bool {
	if s.x == nil || s.x.routes == nil {
		return c == matcher.ChannelSMS && to == s.to
	}
	for _, r := range s.x.routes {
		if r.Channel == c && r.To == to {
			return true
		}
	}
	return false
}

// hasRouteOn is hasRoute(c, to) for s found in the pair chain of number
// to: a session with no routes of its own has one number, its to, which is
// then to (no comparison of the numbers).
func (s *session) hasRouteOn(c, to string) bool {
	if s.x == nil || s.x.routes == nil {
		return c == matcher.ChannelSMS
	}
	return s.hasRoute(c, to)
}

// numCount is how many numbers index s; routeNumber(i) is the i-th, to first.
func (s *session) numCount() int {
	if s.x == nil {
		return 1
	}
	return 1 + len(s.x.nums)
}

func (s *session) routeNumber(i int) string {
	if i == 0 {
		return s.to
	}
	return s.x.nums[i-1]
}

// shardAt is the shard that indexes s under its i-th number: its home
// for to.
func (s *session) shardAt(i int) int {
	if i == 0 {
		return int(s.id[0])
	}
	return s.shardOn(s.routeNumber(i))
}

// shardOn is the shard that indexes s under number num.
func (s *session) shardOn(num string) int {
	if s.capture() {
		return codeShardString(num, s.normCode())
	}
	return pairShard(num, s.number)
}

// shardsOf is the set of shards that index s while it is pending, as a
// bit mask (numShards is 64).
func (s *session) shardsOf() uint64 {
	if s.x == nil {
		return bit(int(s.id[0])) // one route: its home (inlined, no loop)
	}
	return s.shardsOfRoutes()
}

// shardsOfRoutes is shardsOf for a session with extra fields.
func (s *session) shardsOfRoutes() uint64 {
	var mask uint64
	for i := range s.numCount() {
		mask |= bit(s.shardAt(i))
	}
	return mask
}

// nextOn returns the session after s in the pair chain of number num.
func (s *session) nextOn(num string) *session {
	if s.x == nil {
		return nil
	}
	if num == s.to {
		return s.x.pairNext
	}
	for i, n := range s.x.nums {
		if n == num {
			return s.x.next[i]
		}
	}
	return nil
}

// setNextOn sets the session after s in the pair chain of number num.
func (s *session) setNextOn(num string, next *session) {
	if num == s.to {
		if next != nil || s.x != nil {
			s.extra().pairNext = next
		}
		return
	}
	for i, n := range s.x.nums {
		if n == num {
			s.x.next[i] = next
			return
		}
	}
}

// codeShardString is codeShard of a code held as a string.
func codeShardString(to, code string) int { return int(fnv32(to, code) % numShards) }

// lockMask locks the shards of mask in ascending order; unlockMask
// unlocks them.
func (m *Store) lockMask(mask uint64) {
	for b := mask; b != 0; b &= b - 1 {
		m.shards[bits.TrailingZeros64(b)].mu.Lock()
	}
}

func (m *Store) unlockMask(mask uint64) {
	for b := mask; b != 0; b &= b - 1 {
		m.shards[bits.TrailingZeros64(b)].mu.Unlock()
	}
}

// lockPlan locks the shards of held, then calls plan, which looks at them
// and returns the shards its step needs (without changing anything). Until
// held covers them it relocks a larger set and plans again. It returns the
// set it holds: the caller takes its step on plan's last answer and
// unlocks the set.
func (m *Store) lockPlan(held uint64, plan func() uint64) uint64 {
	m.lockMask(held)
	for {
		need := plan() | held
		if need == held {
			return held
		}
		m.unlockMask(held)
		held = need
		m.lockMask(held)
	}
}

// lockSession finds a session by id and locks every shard that indexes it
// (only its home once it is final); fn runs with them held, with the home
// shard. It reports whether the session was found.
func (m *Store) lockSession(id string, fn func(sh *shard, s *session)) bool {
	prefix, raw, ok := parseID(id)
	if !ok {
		return false
	}
	var s *session
	held := m.lockPlan(1<<raw[0], func() uint64 {
		s = m.shards[raw[0]].byID.get(raw)
		if s == nil || s.status.Final() {
			return 0
		}
		return s.shardsOf()
	})
	defer m.unlockMask(held)
	if s == nil || !s.isID(prefix, id) {
		return false
	}
	fn(&m.shards[raw[0]], s)
	return true
}

// bit is the mask of one shard.
func bit(i int) uint64 { return 1 << i }
