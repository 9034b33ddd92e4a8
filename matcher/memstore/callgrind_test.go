package memstore

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestCallgrindIngest is a measure, not a check: it runs only with
// CG_PENDING set. CG_PENDING sessions are pending (as in
// BenchmarkLookupConsume), then CG_N of them are verified by a matching
// ingest; CG_SECOND=1 first gives each sender an entry in the 24 h counts
// (round 2 of the benchmark). The instructions of one ingest are the
// difference of two whole-program counts, CG_N=0 and CG_N=10000, divided by
// 10000 (callgrind's --toggle-collect on ingest is not reliable for Go: a
// goroutine's stack growth can leave it collecting the benchmark's fills):
//
//	go test -c -o ms.test ./matcher/memstore
//	CG_PENDING=10000 CG_N=10000 GOMAXPROCS=1 GOGC=off GODEBUG=asyncpreemptoff=1 \
//	  valgrind --tool=callgrind --callgrind-out-file=cg.n10000 ./ms.test -test.run='^TestCallgrindIngest$'
//
// (the same with CG_N=0), then callgrind_annotate each for its PROGRAM
// TOTALS. cgIngestLoop's own instructions (~40 a message) are in the
// difference. Collecting cgIngestLoop alone
// (--collect-atstart=no --toggle-collect=<its full name>) gave the same
// count within 0.3% with GOGC=off, as above, and lists each function's
// own cost.
func TestCallgrindIngest(t *testing.T) {
	if os.Getenv("CG_PENDING") == "" {
		t.Skip("a callgrind measure: set CG_PENDING and CG_N")
	}
	pending, _ := strconv.Atoi(os.Getenv("CG_PENDING"))
	n, _ := strconv.Atoi(os.Getenv("CG_N"))
	second := os.Getenv("CG_SECOND") != ""
	m := New(Options{})
	from := senders(pending)
	msgs := make([]matcher.Message, pending)
	now := time.Now()
	for i := range pending {
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from[i], Code: "482913", To: to, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = matcher.Message{Provider: "tw", MessageID: s.ID, From: from[i], To: to, Text: "Your code is 482913"}
		if second {
			m.senders.add("k", from[i], now.Add(-time.Minute), [16]byte{1, byte(i), byte(i >> 8), byte(i >> 16)})
		}
	}
	if got := cgIngestLoop(m, msgs[:min(n, pending)]); got != min(n, pending) {
		t.Fatalf("%d of %d matched", got, min(n, pending))
	}
}

//go:noinline
func cgIngestLoop(m *Store, msgs []matcher.Message) int {
	n := 0
	for i := range msgs {
		if o, err := m.ingest(&msgs[i], matcher.IngestOptions{}); err == nil && o.Kind == matcher.Matched {
			n++
		}
	}
	return n
}
