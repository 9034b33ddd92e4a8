package memstore

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// hintOK: whenever the hint is set, it names the slot find would return
// for (lastTo, lastS.number) and that slot holds lastS.
func hintOK(t *testing.T, p *pairIndex, step int, op string) {
	t.Helper()
	if p.lastS == nil {
		return
	}
	i := p.find(p.hash(p.lastTo, p.lastS.number), p.lastTo, p.lastS.number)
	if i != p.last || p.slots[p.last].s != p.lastS {
		t.Fatalf("step %d after %s: stale hint last=%d find=%d slot=%p lastS=%p", step, op, p.last, i, p.slots[p.last].s, p.lastS)
	}
}

// TestPairHintNeverStale: after any sequence of gets, sets, deletes and
// head replacements (sessions on one to three numbers, few senders, so
// probes cluster), the slot get remembered is the slot a lookup finds and
// holds the session it names; replaceHead on another number never uses it.
func TestPairHintNeverStale(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		nums := []string{"+1000", "+1001", "+1002", "+1003"}
		var p pairIndex
		want := map[pairKey]*session{}
		var all []*session
		for step := range 20000 {
			var op string
			switch k := rng.IntN(12); {
			case k < 3 || len(all) == 0:
				op = "set"
				s := &session{to: nums[rng.IntN(2)], number: "+9" + strconv.Itoa(rng.IntN(40))}
				if n := rng.IntN(3); n > 0 {
					s.extra().nums = nums[2 : 2+n]
				}
				for i := range s.numCount() {
					p.set(s.routeNumber(i), s.number, s)
					want[pairKey{s.routeNumber(i), s.number}] = s
				}
				all = append(all, s)
			case k < 7:
				op = "get"
				s := all[rng.IntN(len(all))]
				to := s.routeNumber(rng.IntN(s.numCount()))
				if got := p.get(to, s.number); got != want[pairKey{to, s.number}] {
					t.Fatalf("seed %d step %d: get = another session", seed, step)
				}
				if p.replaceHead("+other", s, nil) {
					t.Fatalf("seed %d step %d: replaceHead on another number took the remembered slot", seed, step)
				}
			case k < 9:
				op = "replaceHead"
				s := all[rng.IntN(len(all))]
				to := s.routeNumber(rng.IntN(s.numCount()))
				var next *session
				if rng.IntN(2) == 0 {
					next = &session{to: to, number: s.number}
				}
				key := pairKey{to, s.number}
				ok := p.replaceHead(to, s, next)
				if ok != (want[key] == s) {
					t.Fatalf("seed %d step %d replaceHead=%v", seed, step, ok)
				}
				if ok {
					if next != nil {
						want[key] = next
						all = append(all, next)
					} else {
						delete(want, key)
					}
				}
			case k < 10:
				op = "set nil"
				s := all[rng.IntN(len(all))]
				to := s.routeNumber(rng.IntN(s.numCount()))
				p.set(to, s.number, nil)
				delete(want, pairKey{to, s.number})
			case k < 11:
				op = "set over (same pair, other head)"
				s := all[rng.IntN(len(all))]
				to := s.routeNumber(rng.IntN(s.numCount()))
				n := &session{to: to, number: s.number}
				p.set(to, s.number, n)
				want[pairKey{to, s.number}] = n
				all = append(all, n)
			default:
				op = "del"
				s := all[rng.IntN(len(all))]
				to := s.routeNumber(rng.IntN(s.numCount()))
				p.del(to, s.number)
				delete(want, pairKey{to, s.number})
			}
			hintOK(t, &p, step, op)
			if p.len() != len(want) {
				t.Fatalf("seed %d step %d: %d pairs, want %d", seed, step, p.len(), len(want))
			}
			if step%97 == 0 {
				for k, s := range want {
					if p.get(k.to, k.from) != s {
						t.Fatalf("lost %v", k)
					}
					hintOK(t, &p, step, "check get")
				}
			}
		}
	}
}
