package memstore

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestFinishUnindexes: finish, with its path for sessions of one number
// (no loop, pairIndex.dropHead), leaves the pair chains, the capture codes
// and the pending counts as the loop over every number of a session
// (refFinish: finish before that path) does, on two stores given the same
// random sessions (one or two numbers, several API keys a pair, capture
// ones) and finishing them in the same random order, a lookup of a random
// pair of the session's before some (so that the slot get found is, or is
// not, the session's).
func TestFinishUnindexes(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	nums, froms := []string{to, to2}, []string{alice, mallet, "+14155550124", "+14155550125"}
	type spec struct {
		id           [16]byte
		key, from    string
		code         string
		created      int64
		routes       []matcher.Route
		lookup, pick int
	}
	const n = 400
	specs := make([]spec, n)
	for i := range specs {
		sp := &specs[i]
		for j := range sp.id {
			sp.id[j] = byte(rng.Uint32())
		}
		sp.key, sp.from, sp.code = string(rune('a'+rng.IntN(3))), froms[rng.IntN(len(froms))], "48291"+string(rune('0'+i%10))
		if rng.IntN(10) == 0 {
			sp.from = "" // capture
			sp.code = string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10)) + "111"
		}
		sp.created = int64(rng.IntN(1000))
		if rng.IntN(3) == 0 {
			sp.routes = []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelWhatsApp, To: to2}}
		}
		sp.lookup, sp.pick = rng.IntN(3), rng.IntN(2)
	}
	order := rng.Perm(n)
	build := func() (*Store, []*session) {
		m := New(Options{})
		ss := make([]*session, n)
		for i, sp := range specs {
			s := &session{id: sp.id, key: sp.key, number: sp.from, code: sp.code, to: to, created: sp.created,
				expires: 1 << 62, status: matcher.Pending, maxAttempts: 3}
			s.setRoutes(slices.Clone(sp.routes))
			home := pairShard(s.to, s.number)
			if s.capture() {
				home = codeShardString(s.to, s.code)
			}
			s.id[0] = byte(home)
			m.insert(&m.shards[home], s)
			ss[i] = s
		}
		return m, ss
	}
	a, as := build()
	b, bs := build()
	chains := func(m *Store) map[pairKey][][16]byte {
		out := map[pairKey][][16]byte{}
		for i := range m.shards {
			for k, s := range m.shards[i].byPair.all() {
				for ; s != nil; s = s.nextOn(k.to) {
					out[k] = append(out[k], s.id)
				}
			}
		}
		return out
	}
	codes := func(m *Store) map[string]*session {
		out := map[string]*session{}
		for i := range m.shards {
			for num, byCode := range m.shards[i].byCode {
				for c, s := range byCode {
					out[num+"/"+c] = s
				}
			}
		}
		return out
	}
	at := time.Unix(2000, 0)
	for step, i := range order {
		for k, m := range []*Store{a, b} {
			s := []*session{as[i], bs[i]}[k]
			if num := nums[specs[i].pick%s.numCount()]; specs[i].lookup > 0 && !s.capture() {
				p := &m.shards[pairShard(num, s.number)].byPair
				if specs[i].lookup == 1 {
					p.get(num, s.number)
				} else {
					p.get(num, froms[(step+1)%len(froms)]) // another pair's lookup
				}
			}
			if k == 0 {
				refFinish(m, s, matcher.Verified, at)
			} else {
				m.finish(s, matcher.Verified, at.UnixNano())
			}
		}
		ca, cb := chains(a), chains(b)
		if len(ca) != len(cb) {
			t.Fatalf("step %d: %d pairs, want %d", step, len(cb), len(ca))
		}
		for k, want := range ca {
			if got := cb[k]; !slices.Equal(got, want) {
				t.Fatalf("step %d: pair %v chain %x, want %x", step, k, got, want)
			}
		}
		if xa, xb := codes(a), codes(b); len(xa) != len(xb) {
			t.Fatalf("step %d: %d capture codes, want %d", step, len(xb), len(xa))
		}
		if pa, pb := a.pendingByNumber(), b.pendingByNumber(); len(pa) != len(pb) || pa[to] != pb[to] || pa[to2] != pb[to2] {
			t.Fatalf("step %d: pending %v, want %v", step, pb, pa)
		}
	}
	if p := b.Pending(); p != 0 {
		t.Fatalf("%d pending after every session finished", p)
	}
}

// refFinish is finish's unindexing as it was before its path for a
// session of one number: every number of s in a loop, each through
// pairRemove.
func refFinish(m *Store, s *session, st matcher.Status, at time.Time) {
	s.status, s.finished = st, at.UnixNano()
	s.setReason(finishReason(st))
	for i := range s.numCount() {
		num, ix := s.routeNumber(i), &m.shards[s.shardAt(i)]
		m.pending.add(ix, num, -1)
		if s.capture() {
			m.unindexCode(ix, s, num)
		} else {
			ix.pairRemove(s, num)
		}
	}
}

// TestHasRouteOn: hasRouteOn is hasRoute on every number that indexes a
// session, for sessions with no extra fields, extra fields and no routes,
// and routes on one or two numbers, and every channel.
func TestHasRouteOn(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	chans := []string{matcher.ChannelSMS, matcher.ChannelWhatsApp, matcher.ChannelCall}
	nums := []string{to, to2, "+14155550102"}
	for i := range 2000 {
		s := &session{to: nums[rng.IntN(2)], number: alice}
		switch i % 3 {
		case 1:
			s.extra().callback = "https://example.com" // extra fields, no routes
		case 2:
			var routes []matcher.Route
			for range 1 + rng.IntN(3) {
				routes = append(routes, matcher.Route{Channel: chans[rng.IntN(len(chans))], To: nums[rng.IntN(len(nums))]})
			}
			s.setRoutes(routes)
		}
		for j := range s.numCount() {
			num := s.routeNumber(j)
			for _, c := range chans {
				if got, want := s.hasRouteOn(c, num), s.hasRoute(c, num); got != want {
					t.Fatalf("session %d on %s: hasRouteOn(%s) %v, hasRoute %v", i, num, c, got, want)
				}
			}
		}
	}
}

// TestSetProviderFront: setProvider, which compares the provider last
// found before the table's index, gives a session the index of its
// provider's name (its providerName) whether the name is the last one
// found, another known one, new, or empty, in any order.
func TestSetProviderFront(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	names := []string{"", "twilio", "vonage", "plivo", "tw-setprovider-test"}
	for i := range 500 {
		name := names[rng.IntN(len(names))]
		if i%50 == 0 {
			name = "setprovider-" + string(rune('a'+i/50)) // new to the table
		}
		s := &session{}
		s.setProvider(strings.Clone(name))
		if got := s.providerName(); got != name || s.provider != providers.index(name) {
			t.Fatalf("step %d: setProvider(%q) gave %q (index %d, table's %d)", i, name, got, s.provider, providers.index(name))
		}
	}
}
