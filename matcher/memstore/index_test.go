package memstore

import (
	"math/rand/v2"
	"runtime"
	"strconv"
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
// pending session (the figure of BenchmarkMemoryPerSession) to 300 bytes.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 160 {
		t.Errorf("a session is %d bytes, want at most 160", n)
	}
	if testing.Short() {
		return
	}
	const n = 200_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m := New(Options{})
	for i := range n {
		from := "+1" + strconv.Itoa(2000000000+i)
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from, To: to, TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	if per := float64(after.HeapAlloc-before.HeapAlloc) / n; per > 300 {
		t.Errorf("%.1f bytes per pending session, want at most 300", per)
	}
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
// providerInX names the table answers providerInX (the session then keeps
// the name itself).
func TestProviderTable(t *testing.T) {
	tab := providerTable{ids: map[string]uint8{"": 0}, n: 1}
	if tab.index("") != 0 || tab.name(0) != "" {
		t.Fatal(`"" is not index 0`)
	}
	for i := 1; i < providerInX; i++ {
		name := "p" + strconv.Itoa(i)
		if got := tab.index(name); int(got) != i || tab.indexBytes([]byte(name)) != got || tab.name(got) != name {
			t.Fatalf("%s: index %d, want %d", name, got, i)
		}
	}
	if tab.index("one too many") != providerInX || tab.index("p7") != 7 {
		t.Fatal("a full table hands out indexes")
	}
	var s session
	s.setProvider("twilio")
	if s.providerName() != "twilio" || s.x != nil {
		t.Fatalf("provider %q, extra %v", s.providerName(), s.x)
	}
}
