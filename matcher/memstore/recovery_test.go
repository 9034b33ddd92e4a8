package memstore

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// dedupeEntry is a processed id as each lists it.
type dedupeEntry struct {
	k    seenKey
	o    matcher.Outcome
	atMS int64
}

func dedupeEntries(d *dedupe) []dedupeEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	var all []dedupeEntry
	d.each(func(k seenKey, o matcher.Outcome, atMS int64) { all = append(all, dedupeEntry{k, o, atMS}) })
	return all
}

// dayOfIDs is a dedupe table of n processed ids over the last two hours
// of now, three in five with a session id (a verification), and the
// section its snapshot writes.
func dayOfIDs(n int, now time.Time) (*dedupe, []byte) {
	var d dedupe
	d.init(time.Hour)
	for i := range n {
		o := matcher.Outcome{Kind: matcher.Unmatched}
		if i%5 < 3 {
			o = matcher.Outcome{Kind: matcher.Matched, SessionID: newID("vrf_", i)}
		}
		at := now.Add(-2 * time.Hour).Add(time.Duration(i) * 2 * time.Hour / time.Duration(n))
		d.mu.Lock()
		d.add(seenKeyOf("twilio", "SM"+strconv.Itoa(i)), o, at.UnixMilli())
		d.mu.Unlock()
	}
	_, section := d.snapshot(0)
	return &d, section
}

// TestRestoreDedupeSame: the processed ids restored from a snapshot are
// those within the retention, oldest first, with their outcomes and times,
// and a key that a section holds twice keeps its first outcome (as add
// does).
func TestRestoreDedupeSame(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	orig, section := dayOfIDs(1000, now)
	limit := now.Add(-time.Hour).UnixMilli()
	var want []dedupeEntry
	for _, e := range dedupeEntries(orig) {
		if e.atMS > limit {
			want = append(want, e)
		}
	}
	var d dedupe
	d.init(time.Hour)
	dc := dec{b: append(section, 0xAB)}
	d.restore(&dc, snapshotVersion, now)
	if dc.err != nil || len(dc.b) != 1 || dc.b[0] != 0xAB {
		t.Fatalf("restore left err %v, %d bytes", dc.err, len(dc.b))
	}
	got := dedupeEntries(&d)
	if len(got) != len(want) || len(want) < 400 || int(d.size.Load()) != len(want) || d.peak != len(want) {
		t.Fatalf("restored %d ids (size %d, peak %d), want %d", len(got), d.size.Load(), d.peak, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("id %d: restored %+v, want %+v", i, got[i], want[i])
		}
	}

	// One key twice: the first outcome stays, and it is listed once.
	k := seenKeyOf("twilio", "again")
	e := enc{}
	e.uv(3)
	for i, sid := range []string{"vrf_first", "", "vrf_second"} {
		key := k
		if i == 1 {
			key = seenKeyOf("twilio", "other")
		}
		e.b = append(e.b, key[:]...)
		e.u8(uint8(matcher.Matched))
		e.str(sid)
		e.time(now.Add(time.Duration(i-10) * time.Minute))
	}
	var d2 dedupe
	d2.init(time.Hour)
	dc = dec{b: e.b}
	d2.restore(&dc, snapshotVersion, now)
	got = dedupeEntries(&d2)
	if dc.err != nil || len(got) != 2 || got[0].k != k || got[0].o.SessionID != "vrf_first" || d2.size.Load() != 2 {
		t.Fatalf("a key twice: restored %+v (err %v)", got, dc.err)
	}
}

// TestRestoreDedupeAllocs: restoring the processed ids makes a few
// allocations, not one per id: the maps are made at their size (they grew
// as they filled) and the session ids share one string (one each).
func TestRestoreDedupeAllocs(t *testing.T) {
	const n = 10_000
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	_, section := dayOfIDs(n, now)
	var d dedupe
	allocs := testing.AllocsPerRun(5, func() {
		d.init(time.Hour)
		dc := dec{b: section}
		d.restore(&dc, snapshotVersion, now)
		if dc.err != nil || d.size.Load() < n/2-1 {
			t.Fatal(dc.err, d.size.Load())
		}
	})
	// Each map's directory and tables, the FIFO's chunks, the ids' string.
	if allocs > 40 {
		t.Errorf("restoring %d processed ids makes %v allocations, want at most 40", n/2, allocs)
	}
}

// TestDecodeSessionAllocs: a verified session decodes in two allocations:
// the session and its own strings (number, code, message id; it made one
// each).
func TestDecodeSessionAllocs(t *testing.T) {
	v := matcher.Session{ID: newID("vrf_", 3), PageToken: newID(tokenPrefix, 3), Key: "k", API: "v1", Country: "US", Language: "en",
		Number: "+14155550123", Code: "482913", To: to, MaxAttempts: 3, CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0),
		Status: matcher.Verified, FinishedAt: time.Unix(1, 5), Provider: "twilio", MessageID: "SM1234567",
		Via:     matcher.Route{Channel: matcher.ChannelSMS, To: to},
		Signals: matcher.Signals{LineType: "mobile", Carrier: "T-Mobile", SenderCountry: "US"}}
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
	got := decode()
	if got == nil {
		t.Fatal("decode")
	}
	if gv := got.view(); gv.Number != v.Number || gv.Code != v.Code || gv.MessageID != v.MessageID || gv.Provider != v.Provider || gv.Country != "US" {
		t.Fatalf("decoded %+v", gv)
	}
	if n := testing.AllocsPerRun(100, func() { decode() }); n > 2 {
		t.Errorf("decoding a verified session makes %v allocations, want at most 2", n)
	}
}

// TestInternerShares: equal bytes give the one string held, whether found
// among the recent ones or in the map after a colliding string took its
// place among them.
func TestInternerShares(t *testing.T) {
	var in interner
	words := []string{"US", "en", "v1", "mobile", "T-Mobile USA", "Verizon Wireless", "AT&T Wireless", to}
	for i := range 200 { // more than the recent ones: some collide
		words = append(words, "+1"+strconv.FormatInt(4155550000+int64(i), 10))
	}
	first := map[string]string{}
	for range 3 {
		for _, w := range words {
			got := in.getBytes([]byte(w))
			if got != w {
				t.Fatalf("getBytes(%q) = %q", w, got)
			}
			if f, ok := first[w]; !ok {
				first[w] = got
			} else if unsafe.StringData(f) != unsafe.StringData(got) {
				t.Fatalf("getBytes(%q) made a second string", w)
			}
		}
	}
}

// BenchmarkDecodeDaySession decodes a verified session of a day's mix
// (labels, provider, proof) as a recovery worker does, with its interner.
func BenchmarkDecodeDaySession(b *testing.B) {
	v := matcher.Session{ID: newID("vrf_", 3), PageToken: newID(tokenPrefix, 3), Key: "k", API: "v1", Country: "US", Language: "en",
		Number: "+14155550123", Code: "482913", To: to, MaxAttempts: 3, CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0),
		Status: matcher.Verified, FinishedAt: time.Unix(1, 5), Provider: "twilio", MessageID: "SM1234567",
		Via:     matcher.Route{Channel: matcher.ChannelSMS, To: to},
		Signals: matcher.Signals{LineType: "mobile", Carrier: "T-Mobile USA", SenderCountry: "US"}}
	s, ok := fromView(&v)
	if !ok {
		b.Fatal("fromView")
	}
	var e enc
	e.compact(s)
	var in interner
	b.ReportAllocs()
	for b.Loop() {
		d := dec{b: e.b}
		if d.compact(&in, codecVersion) == nil {
			b.Fatal("decode")
		}
	}
}

// BenchmarkInternerDay interns the shared strings of a day's verified
// session (key, labels, receiving number, route, proof), as a recovery
// worker does for each.
func BenchmarkInternerDay(b *testing.B) {
	words := [][]byte{[]byte("k"), []byte("v1"), []byte(to), []byte("US"), []byte("en"), []byte("sms"), []byte(to),
		[]byte("mobile"), []byte("T-Mobile USA"), []byte("US")}
	var in interner
	for b.Loop() {
		for _, w := range words {
			in.getBytes(w)
		}
	}
}

// TestDecFastPathsSame: uv and raw, which read a one-byte length inline,
// read what uvLong and rawLong read, leave the same bytes and fail alike,
// on every buffer of up to three bytes and on lengths around 128.
func TestDecFastPathsSame(t *testing.T) {
	var bufs [][]byte
	edges := []byte{0, 1, 2, 3, 0x7e, 0x7f, 0x80, 0x81, 0xff}
	bufs = append(bufs, nil)
	for _, a := range edges {
		bufs = append(bufs, []byte{a})
		for _, b := range edges {
			bufs = append(bufs, []byte{a, b})
			for _, c := range edges {
				bufs = append(bufs, []byte{a, b, c})
			}
		}
	}
	for _, n := range []int{0, 1, 2, 126, 127, 128, 129, 300} {
		e := enc{}
		e.bytes(make([]byte, n))
		for cut := max(len(e.b)-2, 0); cut <= len(e.b)+1; cut++ {
			bufs = append(bufs, append(e.b[:min(cut, len(e.b)):min(cut, len(e.b))], make([]byte, max(cut-len(e.b), 0))...))
		}
	}
	for _, b := range bufs {
		fast, plain := dec{b: b}, dec{b: b}
		if v, w := fast.uv(), plain.uvLong(); v != w || len(fast.b) != len(plain.b) || !errors.Is(fast.err, plain.err) {
			t.Fatalf("uv of % x: %d, %d left, %v; uvLong: %d, %d left, %v", b, v, len(fast.b), fast.err, w, len(plain.b), plain.err)
		}
		fast, plain = dec{b: b}, dec{b: b}
		v, w := fast.raw(), plain.rawLong()
		if string(v) != string(w) || len(v) != len(w) || cap(v) != cap(w) || len(fast.b) != len(plain.b) || !errors.Is(fast.err, plain.err) {
			t.Fatalf("raw of % x: % x, %d left, %v; rawLong: % x, %d left, %v", b, v, len(fast.b), fast.err, w, len(plain.b), plain.err)
		}
	}
}

// TestSessionProofsShared: sessions decoded by a recovery worker, whose
// interner gives a proof met before from its bytes, equal the same
// sessions decoded on their own, for a stream of 2,000 sessions over more
// distinct proofs than the interner keeps (so they collide and replace
// each other), pending ones with none among them.
func TestSessionProofsShared(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	carriers := []string{"T-Mobile USA", "Verizon Wireless", "AT&T Wireless", "Mint", "Visible", "US Cellular", "Cricket"}
	b, want := verifiedStream(t, 2000, func(int) (matcher.Signals, bool) {
		return matcher.Signals{LineType: []string{"mobile", "voip"}[rng.IntN(2)], Carrier: carriers[rng.IntN(len(carriers))],
			SenderCountry: "US", Forwarded: rng.IntN(5) == 0, SenderSessions24h: rng.IntN(3)}, rng.IntN(3) > 0
	})
	got := decodeAlike(t, b, len(want))
	if len(got) != len(want) {
		t.Fatalf("%d of %d sessions decoded", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("session %d:\ndecoded %+v\nwant    %+v", i, got[i], want[i])
		}
	}
}

// verifiedStream encodes n sessions, the ones sig says are verified with
// its signals, and returns the encoding and the sessions' views.
func verifiedStream(t testing.TB, n int, sig func(i int) (matcher.Signals, bool)) ([]byte, []matcher.Session) {
	var e enc
	var views []matcher.Session
	for i := range n {
		v := matcher.Session{ID: newID("vrf_", i%numShards), PageToken: newID(tokenPrefix, i%numShards), Key: "k", API: "v1",
			Number: "+1" + strconv.FormatInt(4155550000+int64(i), 10), Code: "482913", To: to, MaxAttempts: 3,
			CreatedAt: time.Unix(1, 0), ExpiresAt: time.Unix(2, 0)}
		if signals, verified := sig(i); verified {
			v.Status, v.FinishedAt, v.Provider, v.MessageID = matcher.Verified, time.Unix(1, 5), "twilio", "SM"+strconv.Itoa(i)
			v.Via, v.Signals = matcher.Route{Channel: matcher.ChannelSMS, To: to}, signals
		}
		s, ok := fromView(&v)
		if !ok {
			t.Fatal("fromView")
		}
		e.compact(s)
		views = append(views, s.view())
	}
	return e.b, views
}

// decodeAlike decodes up to limit sessions of b with a recovery worker's
// interner, which shares the proofs it decoded before, and on their own,
// fails unless both give the same sessions (views and proofs), errors and
// bytes left, and returns the views decoded.
func decodeAlike(t testing.TB, b []byte, limit int) []matcher.Session {
	var in interner
	var views []matcher.Session
	shared, own := dec{b: b}, dec{b: b}
	for i := 0; i < limit && len(shared.b) > 0; i++ {
		x, y := shared.compact(&in, codecVersion), own.compact(nil, codecVersion)
		if (x == nil) != (y == nil) || (shared.err == nil) != (own.err == nil) || len(shared.b) != len(own.b) {
			t.Fatalf("session %d: %v %v / %v %v / %d %d left", i, x == nil, y == nil, shared.err, own.err, len(shared.b), len(own.b))
		}
		if x == nil {
			break
		}
		xv, yv := x.view(), y.view()
		if !reflect.DeepEqual(xv, yv) || !reflect.DeepEqual(x.proof, y.proof) {
			t.Fatalf("session %d differs:\nshared %+v\nown    %+v", i, xv, yv)
		}
		views = append(views, xv)
	}
	return views
}

// TestProofLen: proofLen is the length that decoding a proof reads, and
// -1 for an encoding cut short.
func TestProofLen(t *testing.T) {
	var e enc
	e.proof(matcher.Route{Channel: "sms", To: to}, matcher.Signals{LineType: "mobile", Carrier: strings.Repeat("c", 200), SenderSessions24h: 300}, "")
	for cut := 0; cut < len(e.b); cut++ {
		if n := proofLen(e.b[:cut]); n != -1 {
			t.Fatalf("proofLen of %d of %d bytes: %d, want -1", cut, len(e.b), n)
		}
	}
	d := dec{b: append(e.b, 7)}
	d.proof()
	if n := proofLen(append(e.b, 7)); d.err != nil || n != len(e.b) || len(d.b) != 1 {
		t.Fatalf("proofLen %d, decoding read %d (%v)", n, len(e.b)+1-len(d.b), d.err)
	}
}

// FuzzInternerSame: a stream of session records decodes to the same
// sessions (views and proofs, errors and bytes left) with a recovery
// worker's interner, which shares proofs it decoded before, as without.
func FuzzInternerSame(f *testing.F) {
	carriers := []string{"T-Mobile USA", "Verizon", "AT&T"}
	b, _ := verifiedStream(f, 40, func(i int) (matcher.Signals, bool) {
		return matcher.Signals{LineType: "mobile", Carrier: carriers[i%3], SenderCountry: "US", Forwarded: i%5 == 0, SenderSessions24h: i % 2}, i%3 > 0
	})
	f.Add(b)
	if b, err := wal.ReadSnapshot(wal.OS{}, "testdata/golden-v2/data", snapshotName); err == nil {
		d := dec{b: b}
		d.u8()
		for range numShards + 1 {
			d.uv()
		}
		for range numShards {
			s := dec{b: d.raw()}
			s.uv()
			if len(s.b) > 0 {
				f.Add(s.b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { decodeAlike(t, b, 200) })
}

// TestRestoreSizesPairs: recovery sizes each shard's pair index once, for
// the pending sessions of one route it will hold, rather than growing it
// through every power of two on the way; the index holds them all.
func TestRestoreSizesPairs(t *testing.T) {
	const n = 20_000 // some 300 a shard: grown, a table of 8, 16, ... 512 slots
	dir := t.TempDir()
	writeRecoveryDir(t, dir, n, matcher.CreateRequest{Key: "k", To: to, TTL: time.Hour}, 50)
	m, err := Open(dir, Options{}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Log().Close()
	pairs := 0
	for i := range m.shards {
		sh := &m.shards[i]
		if r := sh.byPair.resizes; r > 1 {
			t.Errorf("shard %d: its pair index was made %d times", i, r)
		}
		pairs += sh.byPair.len()
	}
	if pairs != n/2 {
		t.Errorf("%d pairs indexed, want %d", pairs, n/2)
	}
}
