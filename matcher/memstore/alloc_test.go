package memstore

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestLookupConsumeAllocs holds the matching core to no allocation of its
// own: the outcome's session id is cut from its shard's chunk of ids (one
// allocation per 34 ids, which AllocsPerRun's whole-number average
// drops). A message that verifies its sender's session makes no event, no
// proof and no sender-count list on the heap (the event is made when
// claimed, an equal proof is shared, a sender's first entry is held in the
// map); a sender verified before in the last 24 h adds one, for its second
// entry.
func TestLookupConsumeAllocs(t *testing.T) {
	const runs = 200
	m := New(Options{})
	for round := range 2 { // round 1: the senders verified before
		msgs := make([]matcher.Message, 0, runs+1)
		for i := range runs + 1 {
			from := "+1415" + strconv.Itoa(5550000+i)
			s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from, Code: "482913", To: to, TTL: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, matcher.Message{Provider: "tw", MessageID: s.ID, From: from, To: to, Text: "Your code is 482913",
				LineType: "mobile", Carrier: "T-Mobile", SenderCountry: "US"})
		}
		next := 0
		allocs := testing.AllocsPerRun(runs, func() {
			o, err := m.ingest(&msgs[next], matcher.IngestOptions{})
			next++
			if err != nil || o.Kind != matcher.Matched {
				t.Fatal(o, err)
			}
		})
		// A sender's second entry in the 24 h counts takes one allocation.
		if want := float64(round); allocs > want {
			t.Errorf("round %d: lookup+consume makes %v allocations, want %v", round, allocs, want)
		}
	}
	if n := m.Undelivered(); n != 2*(runs+1) {
		t.Fatalf("%d events undelivered, want %d", n, 2*(runs+1))
	}
}

// TestLookupByIDAllocs: finding a session by its id (every ack, cancel and
// get does) compares the id without rendering the session's own, and still
// refuses any other spelling: another prefix, or a last character whose
// bits past the 16th byte are set (it decodes to the same raw id).
func TestLookupByIDAllocs(t *testing.T) {
	m := New(Options{})
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: "+14155550100", Code: "482913", To: to, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	found := func(id string) (ok bool) {
		return m.lookup(id, func(*shard, *session) {}) && m.lockSession(id, func(*shard, *session) {})
	}
	if allocs := testing.AllocsPerRun(100, func() { found(s.ID) }); allocs != 0 {
		t.Errorf("lookup by id makes %v allocations, want 0", allocs)
	}
	if !found(s.ID) {
		t.Fatalf("%s not found", s.ID)
	}
	last := s.ID[len(s.ID)-1]
	alphabet := "abcdefghijklmnopqrstuvwxyz234567"
	v := strings.IndexByte(alphabet, last)
	for extra := 1; extra < 4; extra++ {
		id := s.ID[:len(s.ID)-1] + string(alphabet[v|extra])
		if _, _, ok := parseID(id); !ok {
			t.Fatalf("%s does not parse", id)
		}
		if found(id) {
			t.Errorf("%s (not %s) found the session", id, s.ID)
		}
	}
	for i, p := range idPrefixes {
		if strings.HasPrefix(s.ID, p) {
			continue
		}
		if id := p + s.ID[len(idPrefixes[idPrefixOf(t, s.ID)]):]; found(id) {
			t.Errorf("prefix %d: %s found the session", i, id)
		}
	}
}

func idPrefixOf(t *testing.T, id string) uint8 {
	p, _, ok := parseID(id)
	if !ok {
		t.Fatalf("%s does not parse", id)
	}
	return p
}

// TestOwnStringsOneAllocation: a session's number, code and message id are
// made in one allocation, however long (a WhatsApp message id is ~60
// characters: past a 64-byte buffer on the stack it took two).
func TestOwnStringsOneAllocation(t *testing.T) {
	number, code := []byte("+14155550123"), []byte("482913")
	for _, id := range []string{"SM1", "wamid.HBgLMTQxNTU1NTAxMjMVAgASGBQzQTdGRDk5QjcwQTQ4OEE1QkZBNAA="} {
		var a, b, c string
		if n := testing.AllocsPerRun(100, func() { a, b, c = ownStrings(number, code, []byte(id)) }); n != 1 {
			t.Errorf("message id of %d bytes: %v allocations, want 1", len(id), n)
		}
		if a != string(number) || b != string(code) || c != id {
			t.Fatalf("ownStrings = %q %q %q", a, b, c)
		}
	}
}

// TestRenderIDAsEncoding: renderID writes what idEncoding writes, for
// every value of every byte position and for random ids, with each prefix.
func TestRenderIDAsEncoding(t *testing.T) {
	check := func(prefix string, id [16]byte) {
		t.Helper()
		if got, want := renderID(prefix, &id), prefix+idEncoding.EncodeToString(id[:]); got != want {
			t.Fatalf("renderID(%q, %x) = %q, want %q", prefix, id, got, want)
		}
	}
	for _, prefix := range append(matcher.IDPrefixes(), tokenPrefix, "", "a_prefix_longer_than_sixteen_") {
		for pos := range 16 {
			for v := range 256 {
				var id [16]byte
				id[pos] = byte(v)
				check(prefix, id)
			}
		}
		for range 1000 {
			var id [16]byte
			_, _ = rand.Read(id[:])
			check(prefix, id)
		}
	}
}

// TestCreateAllocs holds a create with a generated code to four
// allocations of its own: the code, the id and page token (one string,
// newIDs), the routes of the session returned, and the session. The view
// it returns, which its create record holds, stays on the stack (it took
// some 550 bytes a create), and so do the code's random bytes
// (crypto/rand.Int took three allocations a digit) and the records and
// list of the sessions it supersedes; superseding one adds the id of its
// cancel record. On the WAL, four more: the WAL's batch and its channel
// (each create here waits alone), and the id and page token the create
// record's encoding renders (enc.compact).
func TestCreateAllocs(t *testing.T) {
	const runs = 200
	for _, tc := range []struct {
		durable, supersede bool
		want               float64
	}{{false, false, 4}, {true, false, 8}, {false, true, 5}, {true, true, 9}} {
		t.Run(fmt.Sprintf("durable=%v/supersede=%v", tc.durable, tc.supersede), func(t *testing.T) {
			m := New(Options{})
			if tc.durable {
				var err error
				if m, err = Open(t.TempDir(), Options{}, DurableOptions{SnapshotEvery: 1 << 40}); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := m.Close(); err != nil {
						t.Error(err)
					}
				}()
			}
			// Past the first sessions of each shard, whose tables grow
			// often (and, to supersede, the sessions of the senders the
			// creates counted use); by 8 goroutines, whose creates share
			// the WAL's syncs.
			const fill, writers = 10_000, 8
			from := senders(fill + runs + 1)
			filled := from[:fill]
			if tc.supersede {
				filled = from
			}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := w; i < len(filled); i += writers {
						if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: filled[i], To: to, TTL: time.Hour}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			next := fill
			allocs := testing.AllocsPerRun(runs, func() {
				req := matcher.CreateRequest{Key: "k", Number: from[next], To: to, TTL: time.Hour}
				next++
				if _, _, err := m.createOnce(req); err != nil {
					t.Fatal(err)
				}
			})
			want := tc.want
			if raceEnabled {
				want += 2 // the buffers crypto/rand.Read fills escape: the ids' bytes, the code's
			}
			if allocs > want {
				t.Errorf("create makes %v allocations, want %v", allocs, want)
			}
			if got := m.Len(); got != len(filled)+runs+1 {
				t.Errorf("%d sessions held, want %d", got, len(filled)+runs+1)
			}
		})
	}
}
