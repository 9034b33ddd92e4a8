package memstore

import (
	"context"
	"crypto/rand"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"
	"unsafe"

	"github.com/mogate/mogate/matcher"
)

// newID returns prefix followed by 128 random bits whose first byte is the
// shard: a session id or page token of its own, for tests that build
// sessions.
func newID(prefix string, shard int) string {
	id, token := newIDs(prefix, shard)
	if prefix == tokenPrefix {
		return token
	}
	return id
}

// TestNewIDs: the id and page token newIDs cuts from one string are
// those of their raw bytes, each with its prefix, made for the shard, and
// differ.
func TestNewIDs(t *testing.T) {
	for _, prefix := range append(matcher.IDPrefixes(), "a_prefix_longer_than_sixteen_") {
		for _, shard := range []int{0, 17, numShards - 1} {
			id, token := newIDs(prefix, shard)
			p, raw, ok := parseID(id)
			if len(prefix) <= 16 && (!ok || idPrefixes[p] != prefix || idString(p, &raw) != id || raw[0] != byte(shard)) {
				t.Errorf("newIDs(%q, %d): id %q", prefix, shard, id)
			}
			if n, ok := shardOfID(id); !ok || n != shard {
				t.Errorf("newIDs(%q, %d): id %q of shard %d, %v", prefix, shard, id, n, ok)
			}
			rawTok, ok := parseToken(token)
			if !ok || renderID(tokenPrefix, &rawTok) != token || rawTok[0] != byte(shard) {
				t.Errorf("newIDs(%q, %d): page token %q", prefix, shard, token)
			}
			if rawTok == raw {
				t.Errorf("newIDs(%q, %d): id and page token of the same bits", prefix, shard)
			}
		}
	}
}

// TestIdempotencyKeepsOwnID: the idempotency table keeps its own copy of
// a session's id, not the id cut from the string it shares with the page
// token (newIDs), which would keep the token's bytes for the retention.
func TestIdempotencyKeepsOwnID(t *testing.T) {
	m := New(Options{})
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Hour, IdemKey: "i1", ReqHash: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	is := &m.idem[fnv32("k", "i1")%numShards]
	kept := is.m["k\x00i1"]
	if kept != s.ID {
		t.Fatalf("idempotency table holds %q, want %q", kept, s.ID)
	}
	if unsafe.StringData(kept) == unsafe.StringData(s.ID) { //nolint:gosec // G103: compares where two strings' bytes are
		t.Error("the idempotency table keeps the id that shares its allocation with the page token")
	}
}

// TestTakeDigits: each byte value below 250 makes the digit of its value
// modulo 10, so that every digit comes from exactly 25 of the 256 values;
// the 6 others are skipped, and a source's bytes past a full code are
// left.
func TestTakeDigits(t *testing.T) {
	var counts [10]int
	skipped := 0
	for v := range 256 {
		var d [1]byte
		switch n := takeDigits(d[:], []byte{byte(v)}); {
		case n == 0:
			skipped++
			if v < 250 {
				t.Errorf("byte %d skipped", v)
			}
		case n == 1 && d[0] == '0'+byte(v%10) && v < 250:
			counts[v%10]++
		default:
			t.Errorf("byte %d: %d digits %q", v, n, d[:n])
		}
	}
	if counts != [10]int{25, 25, 25, 25, 25, 25, 25, 25, 25, 25} || skipped != 6 {
		t.Errorf("digits per value %v, %d skipped; want 25 each, 6 skipped", counts, skipped)
	}
	for _, tc := range []struct {
		src  []byte
		size int
		want string
	}{
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 3, "729"},
		{[]byte{250, 7, 255, 251, 42, 249, 13}, 6, "7293"},
		{[]byte{0, 252, 253, 254, 9, 10, 99}, 2, "09"},
		{[]byte{250, 251, 252, 253, 254, 255}, 4, ""},
		{nil, 6, ""},
	} {
		dst := make([]byte, tc.size)
		if n := takeDigits(dst, tc.src); string(dst[:n]) != tc.want {
			t.Errorf("takeDigits(%d, %v) = %q, want %q", tc.size, tc.src, dst[:n], tc.want)
		}
	}
}

// TestRandomDigits: a generated code has the length asked, in decimal
// digits.
func TestRandomDigits(t *testing.T) {
	for _, n := range []int{1, 6, 8, 20, 200} {
		for range 100 {
			code := randomDigits(n)
			if len(code) != n {
				t.Fatalf("randomDigits(%d) = %q", n, code)
			}
			for i := range len(code) {
				if code[i] < '0' || code[i] > '9' {
					t.Fatalf("randomDigits(%d) = %q", n, code)
				}
			}
		}
	}
}

// TestRandomDigitsReadsOnwards: a code's digits are those of crypto/rand's
// stream, in order, its bytes from 250 skipped, however many reads it
// takes (a code of 100 or 500 digits takes several): no byte is used
// twice, none between reads is lost. crypto/rand is made a seeded stream
// (cryptotest), which reads the same bytes in one read as in several.
func TestRandomDigitsReadsOnwards(t *testing.T) {
	for seed := range uint64(40) {
		for _, n := range []int{6, 10, 100, 500} {
			cryptotest.SetGlobalRandom(t, seed)
			got := randomDigits(n)
			cryptotest.SetGlobalRandom(t, seed)
			stream := make([]byte, 2*n+64) // 6 bytes in 256 are skipped
			_, _ = rand.Read(stream)
			want := make([]byte, n)
			if k := takeDigits(want, stream); k != n {
				t.Fatalf("the stream gave %d digits of %d", k, n)
			}
			if got != string(want) {
				t.Fatalf("seed %d: randomDigits(%d) = %q, the stream's digits %q", seed, n, got, want)
			}
		}
	}
}

// keeper is a journal that keeps the records it is given, as they are.
type keeper struct {
	mu   sync.Mutex
	recs []Record
}

func (k *keeper) Append(recs ...Record) Commit {
	k.mu.Lock()
	k.recs = append(k.recs, recs...)
	k.mu.Unlock()
	return committed{}
}

func (k *keeper) records() []Record {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.recs)
}

// TestKeptCreateRecord: a journal that keeps records (other than the WAL)
// and the test tap get each create's records, the superseded sessions'
// cancels first, and a create record whose Session is the session
// returned, their own (create's view of it stays on the stack for the WAL
// and NoJournal): it stays so after create returns and after the session
// changes. With more superseded sessions than create's array of records
// holds, too. On the WAL, with the tap or without, the log replayed
// rebuilds the same matcher.
func TestKeptCreateRecord(t *testing.T) {
	numbers := []string{to, to2, "+14155550102", "+14155550103", "+14155550104"}
	for _, store := range []string{"journal", "tap", "wal+tap", "wal"} {
		for _, superseded := range []int{0, 1, len(numbers)} {
			t.Run(store+"/superseded="+strconv.Itoa(superseded), func(t *testing.T) {
				k := &keeper{}
				var m *Store
				dir := t.TempDir()
				switch store {
				case "journal":
					m = New(Options{Journal: k})
				case "tap":
					m = New(Options{})
				default:
					var err error
					if m, err = Open(dir, Options{}, DurableOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if store == "tap" || store == "wal+tap" {
					m.tap = func(recs []Record) { k.Append(recs...) }
				}
				var olds []string
				for _, num := range numbers[:superseded] {
					s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, To: num, TTL: time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					olds = append(olds, s.ID)
				}
				req := matcher.CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Hour, IdemKey: "i1", ReqHash: "h1",
					Metadata: []byte(`{"order":1}`), Callback: "https://example.com/cb", Country: "US", Language: "en"}
				for _, num := range numbers[:max(superseded, 1)] {
					req.Routes = append(req.Routes, matcher.Route{Channel: matcher.ChannelSMS, To: num})
				}
				s, _, err := m.createOnce(req)
				if err != nil {
					t.Fatal(err)
				}
				if m.durable != nil {
					defer checkRecovered(t, m, dir)
				}
				if store == "wal" {
					return
				}
				recs := k.records()
				step := recs[len(recs)-superseded-1:]
				for i, id := range olds {
					if r := step[i]; r.Op != OpCancel || r.ID != id || r.Reason != matcher.ReasonSuperseded {
						t.Fatalf("record %d of the create: %+v, want the cancel of %s", i, r, id)
					}
				}
				r := step[superseded]
				if r.Op != OpCreate || r.ID != s.ID || r.Session == nil {
					t.Fatalf("the create's record: %+v", r)
				}
				if store == "journal" && r.sess != nil {
					t.Error("the journal's create record holds the live session")
				}
				check := func(when string) {
					t.Helper()
					if !reflect.DeepEqual(*r.Session, s) {
						t.Errorf("%s: the create record's session\n%+v\nwant\n%+v", when, *r.Session, s)
					}
				}
				check("after create")
				// Writes over what was create's stack: safe Go cannot keep a
				// pointer into a dead frame, so this documents the view's
				// stack life rather than guarding it (the compiler does).
				deepStack(200)
				check("after other calls")
				if _, err := m.Cancel(context.Background(), s.ID); err != nil {
					t.Fatal(err)
				}
				check("after the session's cancel")
				if r.Session.Status != matcher.Pending {
					t.Errorf("the create record's session is %v", r.Session.Status)
				}
			})
		}
	}
}

// checkRecovered closes the log of the durable matcher m (with no
// snapshot: a crash) and checks that the matcher recovered from dir, by
// replaying the log, holds what it held.
func checkRecovered(t *testing.T, m *Store, dir string) {
	t.Helper()
	want := state(m)
	if err := m.Log().Close(); err != nil {
		t.Fatal(err)
	}
	m2, err := Open(dir, Options{}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if got := state(m2); got != want {
		t.Errorf("recovered\n%s\nwant\n%s", got, want)
	}
}

// deepStack calls itself depth times with a frame of a kilobyte of
// nonzero bytes.
func deepStack(depth int) byte {
	var b [1024]byte
	for i := range b {
		b[i] = byte(i) | 1
	}
	if depth == 0 {
		return b[depth]
	}
	return deepStack(depth-1) ^ b[depth%len(b)]
}
