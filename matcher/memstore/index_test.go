package memstore

import (
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
)

// TestIndexes runs random puts and deletes on the id and pair tables and
// on Go maps side by side: the tables must hold what the maps hold, through
// growth and backward-shift deletion.
func TestIndexes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var byID, byToken idIndex
	byToken.token = true
	var pairs pairIndex
	wantID := map[[16]byte]*session{}
	wantPair := map[pairKey]*session{}
	var live []*session
	for step := range 20_000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			s := live[i]
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			byID.del(s.id)
			byToken.del(s.token)
			pairs.del(s.to, s.number)
			delete(wantID, s.id)
			delete(wantPair, pairKey{s.to, s.number})
		} else {
			s := &session{to: "+1415555" + strconv.Itoa(rng.IntN(4)), number: "+1" + strconv.Itoa(step)}
			for i := range s.id {
				s.id[i], s.token[i] = byte(rng.Uint32()), byte(rng.Uint32())
			}
			s.id[1] = 0 // ids of a shard share their first byte; make more alike
			live = append(live, s)
			byID.put(s)
			byToken.put(s)
			pairs.set(s.to, s.number, s)
			wantID[s.id] = s
			wantPair[pairKey{s.to, s.number}] = s
		}
		if step%997 != 0 {
			continue
		}
		if byID.len() != len(wantID) || byToken.len() != len(wantID) || pairs.len() != len(wantPair) {
			t.Fatalf("step %d: %d ids, %d tokens, %d pairs; want %d, %d", step, byID.len(), byToken.len(), pairs.len(), len(wantID), len(wantPair))
		}
		for _, s := range live {
			if byID.get(s.id) != s || byToken.get(s.token) != s || pairs.get(s.to, s.number) != s {
				t.Fatalf("step %d: session %x not found", step, s.id)
			}
		}
		for k, s := range pairs.all() {
			if wantPair[k] != s {
				t.Fatalf("step %d: pair %v yields a session not held", step, k)
			}
		}
		if byID.get([16]byte{1}) != nil || pairs.get("+1", "+2") != nil {
			t.Fatal("a key never put is found")
		}
	}
}

// TestSessionSize holds a session to its size class and the heap held per
// pending session (the figures of BenchmarkMemoryPerSession) to 300 bytes:
// as the gateway creates them (API, country and language set), and bare.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 160 {
		t.Errorf("a session is %d bytes, want at most 160", n)
	}
	if testing.Short() {
		return
	}
	for _, shape := range sessionShapes {
		if per := bytesPerSession(t, 200_000, shape.req); per > 300 {
			t.Errorf("%s: %.1f bytes per pending session, want at most 300", shape.name, per)
		}
	}
}

// sessionShapes are the create requests BenchmarkMemoryPerSession and
// TestSessionSize measure: "gateway" is what a POST /v1/verifications with
// a number and a country makes (gateway/verifications.go create: API "v1",
// the language "en" when none is asked, the country upper-cased, a
// generated code), "contiguity" what gateway/contiguity.go makes, "bare"
// a session with none of those fields.
var sessionShapes = []struct {
	name string
	req  matcher.CreateRequest
}{
	{"gateway", matcher.CreateRequest{Key: "k", API: "v1", Country: "US", Language: "en", To: to, TTL: time.Hour}},
	{"contiguity", matcher.CreateRequest{Key: "k", API: "contiguity", IDPrefix: "r_otp_", Language: "en", To: to, TTL: time.Hour}},
	{"bare", matcher.CreateRequest{Key: "k", To: to, TTL: time.Hour}},
}

// bytesPerSession is the heap held per pending session, n sessions of
// distinct senders made from req.
func bytesPerSession(tb testing.TB, n int, req matcher.CreateRequest) float64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := New(Options{})
	for i := range n {
		r := req
		// The gateway's strings are its own, made per request.
		r.API, r.Country, r.Language = strings.Clone(r.API), strings.Clone(r.Country), strings.Clone(r.Language)
		r.Number = "+1" + strconv.Itoa(2000000000+i)
		if _, _, err := m.createOnce(r); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestDecodeRaw: decodeRaw accepts and decodes exactly what idEncoding
// does, for ids, near-ids and junk.
func TestDecodeRaw(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	for i := range 200_000 {
		b := make([]byte, 26)
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		switch i % 4 {
		case 1:
			b[rng.IntN(26)] = byte(rng.IntN(256)) // any byte
		case 2:
			b[rng.IntN(26)] = "A1=\n\r8"[rng.IntN(6)]
		}
		got, gotOK := decodeRaw(string(b))
		var want [16]byte
		n, err := idEncoding.Decode(want[:], b)
		wantOK := err == nil && n == 16 && int(want[0]) < numShards
		if gotOK != wantOK || gotOK && got != want {
			t.Fatalf("%q: decodeRaw %x %v, idEncoding %x %v", b, got, gotOK, want, wantOK)
		}
	}
}

// TestProviderTable: names get stable indexes, "" is 0, and past
// tableInX names the table answers tableInX (the session then keeps the
// name itself); a name added is a copy.
func TestProviderTable(t *testing.T) {
	tab := newTable(strings.Clone)
	if tab.index("") != 0 || tab.name(0) != "" {
		t.Fatal(`"" is not index 0`)
	}
	for i := 1; i < tableInX; i++ {
		name := "p" + strconv.Itoa(i)
		if got := tab.index(name); int(got) != i || indexBytes(tab, []byte(name)) != got || tab.name(got) != name {
			t.Fatalf("%s: index %d, want %d", name, got, i)
		}
	}
	if tab.index("one too many") != tableInX || tab.index("p7") != 7 {
		t.Fatal("a full table hands out indexes")
	}
	var s session
	s.setProvider("twilio")
	if s.providerName() != "twilio" || s.x != nil {
		t.Fatalf("provider %q, extra %v", s.providerName(), s.x)
	}
	s.setLabels(labelSet{"v1", "US", "en"})
	if s.labelSet() != (labelSet{"v1", "US", "en"}) || s.x != nil {
		t.Fatalf("labels %v, extra %v", s.labelSet(), s.x)
	}
}

// TestLabelsPastTable: once the label table is full, a session keeps its
// labels in its extra fields.
func TestLabelsPastTable(t *testing.T) {
	saved := labelSets
	defer func() { labelSets = saved }()
	labelSets = newTable(func(l labelSet) labelSet { return l })
	for i := 1; i < tableInX; i++ {
		labelSets.index(labelSet{api: "v1", country: strconv.Itoa(i)})
	}
	var s session
	s.setLabels(labelSet{"contiguity", "FR", "fr"})
	if s.labels != tableInX || s.x == nil || s.labelSet() != (labelSet{"contiguity", "FR", "fr"}) {
		t.Fatalf("labels %d %v", s.labels, s.labelSet())
	}
}

// TestProofsStartOver: the proof table stays bounded (its key holds
// SenderSessions24h, so it keeps meeting new proofs) and keeps sharing
// what it holds.
func TestProofsStartOver(t *testing.T) {
	c := newProofCache()
	for i := range 3 * maxProofs {
		p := proof{via: matcher.Route{Channel: matcher.ChannelSMS, To: to}, signals: matcher.Signals{SenderSessions24h: i}}
		q := c.get(&p)
		clear(c.recent[:]) // the maps' answer, not the front cache's
		if *q != p || c.get(&p) != q {
			t.Fatalf("proof %d not shared", i)
		}
	}
	if n := c.len(); n > maxProofs {
		t.Fatalf("%d proofs held, want at most %d", n, maxProofs)
	}
}

// TestDecodeRoutesAllocs: decoding a verified session of two routes, whose
// strings the interner already holds, makes no string for its routes nor
// its proof (it made one per route string, then interned it, and one per
// proof string).
func TestDecodeRoutesAllocs(t *testing.T) {
	v := matcher.Session{ID: newID("vrf_", 3), PageToken: newID(tokenPrefix, 3), Key: "k", Number: "+14155550123", Code: "482913", To: to,
		Routes:      []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelWhatsApp, To: "+14155550101"}},
		MaxAttempts: 3, CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0),
		Status: matcher.Verified, FinishedAt: time.Unix(1, 5), Provider: "twilio",
		Via:     matcher.Route{Channel: matcher.ChannelWhatsApp, To: "+14155550101"},
		Signals: matcher.Signals{LineType: "mobile", Carrier: "T-Mobile", SenderCountry: "US", SenderSessions24h: 2}}
	s, ok := fromView(&v)
	if !ok {
		t.Fatal("fromView")
	}
	var e enc
	e.compact(s)
	var in interner
	decode := func() *session {
		d := dec{b: e.b}
		return d.compact(&in, codecVersion)
	}
	if got := decode(); got == nil || len(got.x.routes) != 2 || got.x.routes[1] != v.Routes[1] || got.proof != s.proof {
		t.Fatalf("decoded %+v", got)
	}
	// The session, its extra fields, its routes, nums and next slices, the
	// number and code (one string, see ownStrings): 6 at most.
	if n := testing.AllocsPerRun(100, func() { decode() }); n > 6 {
		t.Errorf("decoding a session of two routes makes %v allocations, want at most 6", n)
	}
}

// TestTablesReadWithoutLock: a known provider, label set or proof is read
// while the table's lock is held (by an addition): every verification and
// every recovered session reads them, under shard locks.
func TestTablesReadWithoutLock(t *testing.T) {
	prov := newTable(strings.Clone)
	labs := newTable(func(l labelSet) labelSet { return l })
	pc := newProofCache()
	p := proof{via: matcher.Route{Channel: matcher.ChannelSMS, To: to}, signals: matcher.Signals{Carrier: "T-Mobile"}}
	i, j := prov.index("twilio"), labs.index(labelSet{"v1", "US", "en"})
	q := pc.get(&p)
	for range 10 { // until it is merged into the map read without the lock
		clear(pc.recent[:]) // the maps' answer, not the front cache's
		pc.get(&p)
	}
	clear(pc.recent[:])
	prov.mu.Lock()
	labs.mu.Lock()
	pc.mu.Lock()
	defer prov.mu.Unlock()
	defer labs.mu.Unlock()
	defer pc.mu.Unlock()
	done := make(chan bool)
	go func() {
		done <- prov.index("twilio") == i && indexBytes(prov, []byte("twilio")) == i && prov.name(i) == "twilio" &&
			labs.index(labelSet{"v1", "US", "en"}) == j && pc.get(&p) == q
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatal("a known value read a different index or proof")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a known value waits for the table's lock")
	}
}

// TestRecentProofs: a proof found among the recent ones is the one the
// maps share, equal to the one asked for, also when two proofs take turns
// in one slot (they differ only where the slot's hash does not look).
func TestRecentProofs(t *testing.T) {
	c := newProofCache()
	a := proof{via: matcher.Route{Channel: matcher.ChannelSMS, To: to}, signals: matcher.Signals{Carrier: "T-Mobile", SenderSessions24h: 1}}
	b := a
	b.signals.Carrier = "T-Nobile"
	if a.slot() != b.slot() {
		t.Fatalf("slots %d and %d: the test wants one", a.slot(), b.slot())
	}
	qa, qb := c.get(&a), c.get(&b)
	for i := range 10 {
		p, want := a, qa
		if i%2 == 1 {
			p, want = b, qb
		}
		p.signals.Carrier = strings.Clone(p.signals.Carrier) // equal, not the same string
		if q := c.get(&p); q != want || *q != p {
			t.Fatalf("get %d: %+v (%p), want %+v (%p)", i, *q, q, p, want)
		}
	}
	if qa == qb || *qa != a || *qb != b {
		t.Fatalf("shared %+v and %+v", *qa, *qb)
	}
}

// TestPairIndexReplaceHeadAfterGet: replaceHead uses the slot get found
// last only for that session and number, and only while the table has not
// changed: random gets, sets, replaceHeads and deletes of sessions that
// head the chains of two or three numbers of one table, against a Go map.
// It fails when the hint is taken for another number of the same session,
// or kept across a set or a delete (growth and backward shift move slots).
func TestPairIndexReplaceHeadAfterGet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nums := []string{"+14155550100", "+14155550101", "+14155550102"}
	var pairs pairIndex
	want := map[pairKey]*session{}
	var all []*session
	for step := range 50_000 {
		switch k := rng.IntN(10); {
		case k < 3 || len(want) == 0: // a session heading the chains of 1 to 3 numbers
			s := &session{to: nums[0], number: "+1" + strconv.Itoa(rng.IntN(64))}
			if n := rng.IntN(3); n > 0 {
				s.extra().nums = nums[1 : 1+n]
			}
			for i := range s.numCount() {
				pairs.set(s.routeNumber(i), s.number, s)
				want[pairKey{s.routeNumber(i), s.number}] = s
			}
			all = append(all, s)
		case k < 6: // a get, then maybe a replaceHead of its session, on any of its numbers
			s := all[rng.IntN(len(all))]
			to := s.routeNumber(rng.IntN(s.numCount()))
			if got := pairs.get(to, s.number); got != want[pairKey{to, s.number}] {
				t.Fatalf("step %d: get(%s, %s) = %p, want %p", step, to, s.number, got, want[pairKey{to, s.number}])
			}
			if rng.IntN(2) == 0 {
				continue
			}
			// The table may change in between (a session on more numbers
			// leaves the chains of the others first).
			for range rng.IntN(3) {
				o := all[rng.IntN(len(all))]
				oto := o.routeNumber(rng.IntN(o.numCount()))
				if rng.IntN(2) == 0 {
					pairs.del(oto, o.number)
					delete(want, pairKey{oto, o.number})
				} else {
					pairs.set(oto, o.number, o)
					want[pairKey{oto, o.number}] = o
				}
			}
			to = s.routeNumber(rng.IntN(s.numCount()))
			var next *session
			if rng.IntN(2) == 0 {
				next = &session{to: to, number: s.number}
			}
			key := pairKey{to, s.number}
			wantOK := want[key] == s
			if ok := pairs.replaceHead(to, s, next); ok != wantOK {
				t.Fatalf("step %d: replaceHead(%s, %s) = %v, want %v", step, to, s.number, ok, wantOK)
			}
			if wantOK {
				if next != nil {
					want[key] = next
					all = append(all, next)
				} else {
					delete(want, key)
				}
			}
		default: // a delete of a random pair
			s := all[rng.IntN(len(all))]
			to := s.routeNumber(rng.IntN(s.numCount()))
			pairs.del(to, s.number)
			delete(want, pairKey{to, s.number})
		}
		if pairs.len() != len(want) {
			t.Fatalf("step %d: %d pairs, want %d", step, pairs.len(), len(want))
		}
		if step%101 == 0 {
			for k, s := range want {
				if pairs.get(k.to, k.from) != s {
					t.Fatalf("step %d: pair %v lost", step, k)
				}
			}
		}
	}

	// And for certain: a get, then a delete that shifts the session's slot
	// back, or growth that moves every slot, then its replaceHead.
	var p pairIndex
	var ss []*session
	for i := range 48 {
		s := &session{to: nums[0], number: "+1" + strconv.Itoa(i)}
		p.set(s.to, s.number, s)
		ss = append(ss, s)
	}
	shifted := false
	for _, s := range ss {
		i := p.find(p.hash(s.to, s.number), s.to, s.number)
		home := int(p.slots[i].h) & (len(p.slots) - 1)
		if i == home {
			continue // not displaced: a delete before it does not move it
		}
		shifted = true
		p.get(s.to, s.number)
		o := p.slots[home].s
		p.del(o.to, o.number)
		if !p.replaceHead(s.to, s, nil) || p.get(s.to, s.number) != nil {
			t.Fatal("replaceHead after a delete moved the head's slot: the pair is still held")
		}
		break
	}
	if !shifted {
		t.Fatal("no displaced session to shift")
	}
	// Growth keeps a slot's index by chance (its hash's next bit is 0):
	// through eight growths, one moves it.
	for g := range 8 {
		s := &session{to: nums[0], number: "+3" + strconv.Itoa(g)} // not one the delete above took out
		p.set(s.to, s.number, s)
		p.get(s.to, s.number)
		for n, size := 0, len(p.slots); len(p.slots) == size; n++ {
			num := "+2" + strconv.Itoa(g) + "-" + strconv.Itoa(n)
			p.set(nums[0], num, &session{to: nums[0], number: num})
		}
		if !p.replaceHead(s.to, s, nil) || p.get(s.to, s.number) != nil {
			t.Fatalf("replaceHead after growth %d: the pair is still held", g)
		}
	}
}

// TestProofEqual: proof.equal is ==, on proofs that differ in any one
// field or several, by content or by length, or are equal in distinct
// strings; and it knows every field (a field added to a proof, a Route or
// Signals fails here until equal compares it).
func TestProofEqual(t *testing.T) {
	if n, m := reflect.TypeFor[matcher.Signals]().NumField(), reflect.TypeFor[matcher.Route]().NumField(); n != 6 || m != 2 ||
		reflect.TypeFor[proof]().NumField() != 2 {
		t.Fatalf("Signals has %d fields, Route %d: proof.equal compares 6 and 2", n, m)
	}
	strs := []string{"", "a", "b", "ab", "+14155550100", "+14155550101"}
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func() string { return strings.Clone(strs[rng.IntN(len(strs))]) }
	random := func() proof {
		return proof{via: matcher.Route{Channel: pick(), To: pick()}, signals: matcher.Signals{
			LineType: pick(), Carrier: pick(), SenderCountry: pick(), Attestation: pick(),
			Forwarded: rng.IntN(2) == 0, SenderSessions24h: rng.IntN(2)}}
	}
	for range 20_000 {
		p := random()
		q := p
		switch k := rng.IntN(9); k { // one field changed, or (8) any
		case 0:
			q.via.Channel = pick()
		case 1:
			q.via.To = pick()
		case 2:
			q.signals.LineType = pick()
		case 3:
			q.signals.Carrier = pick()
		case 4:
			q.signals.SenderCountry = pick()
		case 5:
			q.signals.Attestation = pick()
		case 6:
			q.signals.Forwarded = !q.signals.Forwarded
		case 7:
			q.signals.SenderSessions24h++
		default:
			q = random()
		}
		if p.equal(&q) != (p == q) || q.equal(&p) != (p == q) {
			t.Fatalf("%+v equal %+v: %v, want %v", p, q, p.equal(&q), p == q)
		}
	}
}

// TestIDArenaRenders: idArena.idString is session.idString (renderID, the
// reference) for random raw ids of every prefix, and every id it handed
// out still reads the same once its chunk and those after it are full
// (its prefix word writes past the prefix only into its own id's bytes).
func TestIDArenaRenders(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var a idArena
	var got, want []string
	for i := range 3 * idChunk / 30 {
		s := &session{pr: uint8(rng.IntN(len(idPrefixes))) << 6}
		for j := range s.id {
			s.id[j] = byte(rng.Uint32())
		}
		if i%7 == 0 {
			s.id = [16]byte{} // the ends of the alphabet, too
		} else if i%7 == 1 {
			s.id = [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		}
		id := a.idString(s)
		if ref := idString(s.prefix(), &s.id); id != ref {
			t.Fatalf("id %d: %q, want %q", i, id, ref)
		}
		got, want = append(got, id), append(want, strings.Clone(id))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("id %d changed: %q, was %q", i, got[i], want[i])
		}
	}
}

// TestRecordProofInPlace: a Record's proof, read in place, is the proof
// of its Via and Signals, for random records; and setProof shares it as
// it shares that proof copied.
func TestRecordProofInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	strs := []string{"", "sms", "whatsapp", "+14155550100", "mobile", "Verizon", "US", "A"}
	pick := func() string { return strs[rng.IntN(len(strs))] }
	for range 1000 {
		r := Record{Op: OpVerify, ID: pick(), From: pick(), Reason: pick(), Via: matcher.Route{Channel: pick(), To: pick()},
			Signals: matcher.Signals{LineType: pick(), Carrier: pick(), SenderCountry: pick(), Attestation: pick(),
				Forwarded: rng.IntN(2) == 0, SenderSessions24h: rng.IntN(3)},
			Outcome: matcher.Outcome{SessionID: pick()}}
		want := proof{via: r.Via, signals: r.Signals}
		if got := *r.proof(); got != want {
			t.Fatalf("%+v: proof %+v, want %+v", r, got, want)
		}
		var s session
		s.setProof(&r)
		if s.proof != sharedProof(&want) {
			t.Fatalf("%+v: setProof gave %p, the shared copy is %p", r, s.proof, sharedProof(&want))
		}
	}
}

// TestProofSlotSpreads: proofs that differ in one string's last (or
// first) character, in any field, or in the count, fall mostly in
// distinct slots of the recent proofs (proof.slot): no field's ends are
// lost to the mixing.
func TestProofSlotSpreads(t *testing.T) {
	base := proof{via: matcher.Route{Channel: "sms", To: "+14155550100"}, signals: matcher.Signals{
		LineType: "mobile", Carrier: "Verizon", SenderCountry: "US", Attestation: "A"}}
	fields := []func(p *proof) *string{
		func(p *proof) *string { return &p.via.Channel }, func(p *proof) *string { return &p.via.To },
		func(p *proof) *string { return &p.signals.LineType }, func(p *proof) *string { return &p.signals.Carrier },
		func(p *proof) *string { return &p.signals.SenderCountry }, func(p *proof) *string { return &p.signals.Attestation },
	}
	for f, field := range fields {
		for _, end := range []string{"last", "first"} {
			slots := map[int]bool{}
			for c := range 10 {
				p := base
				v := field(&p)
				if end == "last" {
					*v = (*v)[:len(*v)-1] + string(rune('0'+c))
				} else {
					*v = string(rune('0'+c)) + (*v)[1:]
				}
				slots[p.slot()] = true
			}
			if len(slots) < 8 {
				t.Fatalf("field %d, %s character: 10 proofs in %d slots", f, end, len(slots))
			}
		}
	}
	slots := map[int]bool{}
	for n := range 10 {
		p := base
		p.signals.SenderSessions24h = n
		slots[p.slot()] = true
	}
	if len(slots) < 8 {
		t.Fatalf("10 counts in %d slots", len(slots))
	}
}
