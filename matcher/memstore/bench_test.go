package memstore

import (
	"fmt"
	mathrand "math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

func senders(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "+1415" + fmt.Sprintf("%07d", i)
	}
	return out
}

// BenchmarkLookupConsume is the matching core in memory: one inbound
// message finds its expected-sender session, checks the code and verifies
// it (no dedupe, no journal), with 10k and with 1M sessions pending.
func BenchmarkLookupConsume(b *testing.B) {
	for _, pending := range []int{10_000, 1_000_000} {
		b.Run("pending="+strconv.Itoa(pending), func(b *testing.B) { benchMatch(b, pending, false) })
	}
}

// BenchmarkDependentLoad is the machine's floor under
// BenchmarkLookupConsume at 1M pending: the time of one load whose address
// the load before it gave (a random walk over one cache line in each 64
// bytes of a buffer), as finding a message's pair in its table and then
// its session is. 4 MiB is about the tables and sessions of 10k pending;
// at 1M, 32 MiB is the pair tables and 512 MiB the whole (~300 MB of
// sessions, the pair tables, the sender counts).
func BenchmarkDependentLoad(b *testing.B) {
	for _, mib := range []int{4, 32, 512} {
		next := chain(mib << 20 / 64) // once a size: b.Run calls its function for each b.N
		b.Run(strconv.Itoa(mib)+"MiB", func(b *testing.B) {
			p := 0
			for range b.N {
				p = int(next[p])
			}
			if p < 0 {
				b.Fatal(p) // keeps the walk
			}
		})
	}
}

// chain returns n cache lines (8 words each) whose first words link them
// in one random cycle: chain(n)[8*i] is the index of the next line's
// first word.
func chain(n int) []int64 {
	next := make([]int64, 8*n)
	order := mathrand.Perm(n)
	for i, line := range order {
		next[8*line] = int64(8 * order[(i+1)%n])
	}
	return next
}

// BenchmarkIngest is the whole in-memory path of a message with 10k
// sessions pending: dedupe claim, match, dedupe record.
func BenchmarkIngest(b *testing.B) { benchMatch(b, 10_000, true) }

// benchMatch consumes b.N sessions, pending at a time: the timer stops
// while each round's sessions are created.
func benchMatch(b *testing.B, pending int, full bool) {
	m := New(Options{})
	from := senders(pending)
	msgs := make([]matcher.Message, pending)
	round := 0
	fill := func() {
		b.StopTimer()
		for i := range pending {
			s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from[i], Code: "482913", To: to, TTL: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = matcher.Message{Provider: "tw", MessageID: s.ID, From: from[i], To: to, Text: "Your code is 482913"}
		}
		round++
		b.StartTimer()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		j := i % pending
		if j == 0 {
			fill()
		}
		var o matcher.Outcome
		var err error
		if full {
			o, err = m.ingestOnce(msgs[j], matcher.IngestOptions{})
		} else {
			o, err = m.ingest(&msgs[j], matcher.IngestOptions{})
		}
		if err != nil || o.Kind != matcher.Matched {
			b.Fatal(o, err)
		}
	}
}

// BenchmarkCreate creates expected-sender sessions in memory.
func BenchmarkCreate(b *testing.B) { benchCreates(b, New(Options{})) }

// benchCreates creates b.N expected-sender sessions in m, each with a
// generated code.
func benchCreates(b *testing.B, m *Store) {
	from := senders(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from[i], To: to, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWALAppend measures durable records per second: each writer
// appends a 120-byte record and waits for it to be synced, in a loop.
func BenchmarkWALAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64, 512} {
		b.Run("writers="+strconv.Itoa(writers), func(b *testing.B) {
			w, err := wal.Open(b.TempDir(), wal.Options{}, func(uint64, []byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			rec := make([]byte, 120)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if err := w.Append(rec).Wait(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkRecovery1M opens a data directory holding 1M sessions (a
// snapshot and a short log tail) and reports the time to recover it:
// "pending", 1M pending sessions of no labels; "day", a day's mix as the
// gateway makes them (API, country, language set), 60% of them verified by
// a message (provider, message id, carrier and line type recorded: each
// finished session takes the provider and proof tables on recovery) and
// the rest pending.
func BenchmarkRecovery1M(b *testing.B) {
	for _, c := range recoveryMixes {
		b.Run(c.name, func(b *testing.B) { benchRecovery(b, c.req, c.verifiedPct) })
	}
}

// recoveryMixes are the data directories of BenchmarkRecovery1M and
// BenchmarkRestart1M.
var recoveryMixes = []struct {
	name        string
	req         matcher.CreateRequest
	verifiedPct int64
}{
	{"pending", matcher.CreateRequest{Key: "k", To: to, TTL: time.Hour}, 0},
	{"day", matcher.CreateRequest{Key: "k", API: "v1", Country: "US", Language: "en", To: to, TTL: time.Hour}, 60},
}

// benchRecovery recovers 1M sessions made from req, verifiedPct percent of
// them verified.
func benchRecovery(b *testing.B, req matcher.CreateRequest, verifiedPct int64) {
	const n = 1_000_000
	dir := b.TempDir()
	writeRecoveryDir(b, dir, n, req, verifiedPct)
	b.ResetTimer()
	for range b.N {
		start, cpu := time.Now(), cpuTime()
		m2, err := Open(dir, Options{}, DurableOptions{SnapshotEvery: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/recovery")
		// The process's CPU time (every thread, the collector's too): on a
		// shared machine it varies less than the wall time.
		b.ReportMetric((cpuTime() - cpu).Seconds(), "cpu-s/recovery")
		if m2.Len() != n {
			b.Fatalf("recovered %d sessions", m2.Len())
		}
		b.StopTimer()
		m2.Log().Close()
		b.StartTimer()
	}
}

// writeRecoveryDir makes a data directory in dir holding n sessions made
// from req, verifiedPct percent of them verified by a message, and closes
// it (a snapshot and a short log tail).
func writeRecoveryDir(tb testing.TB, dir string, n int64, req matcher.CreateRequest, verifiedPct int64) {
	m, err := Open(dir, Options{}, DurableOptions{SnapshotEvery: 1 << 40})
	if err != nil {
		tb.Fatal(err)
	}
	carriers := []string{"T-Mobile USA", "Verizon Wireless", "AT&T Wireless"}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= n; i = next.Add(1) {
				r := req
				r.Number = "+1" + strconv.FormatInt(2000000000+i, 10)
				s, _, err := m.createOnce(r)
				if err != nil {
					tb.Error(err)
					return
				}
				if i%100 >= verifiedPct {
					continue
				}
				msg := matcher.Message{Provider: "twilio", MessageID: "SM" + strconv.FormatInt(i, 10), From: r.Number, To: to,
					Text: "Your code is " + s.Code, LineType: "mobile", Carrier: carriers[i%3], SenderCountry: "US"}
				if o, err := m.ingestOnce(msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
					tb.Error(o, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := m.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkMemoryPerSession reports the heap held per pending session, of
// each of sessionShapes.
func BenchmarkMemoryPerSession(b *testing.B) {
	for _, shape := range sessionShapes {
		b.Run(shape.name, func(b *testing.B) {
			for range b.N {
				b.ReportMetric(bytesPerSession(b, 200_000, shape.req), "bytes/session")
			}
		})
	}
}

// BenchmarkProcessedIDMemory reports the heap held per remembered processed
// message id (or spent nonce) in the dedupe table, with 1M remembered.
func BenchmarkProcessedIDMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m := New(Options{})
		now := time.Now()
		for i := range n {
			k := seenKeyOf("twilio", "SM"+strconv.Itoa(10_000_000+i))
			m.dedupe.mu.Lock()
			m.dedupe.add(k, matcher.Outcome{Kind: matcher.Unmatched}, now.UnixMilli())
			m.dedupe.mu.Unlock()
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if m.Remembered() != n {
			b.Fatalf("remembered %d", m.Remembered())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/id")
		runtime.KeepAlive(m)
	}
}

// BenchmarkSenderCountMemory reports the heap held per verification in the
// 24 h sender counts, with 1M verifications of distinct senders (the
// sender strings themselves are the sessions', so they are not counted).
func BenchmarkSenderCountMemory(b *testing.B) {
	const n = 1_000_000
	from := senders(n)
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var c senderCounts
		now := time.Now()
		for i := range n {
			c.add("k", from[i], now, [16]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if c.len() != n {
			b.Fatalf("held %d", c.len())
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/verification")
		runtime.KeepAlive(&c)
	}
}

// TestChainIsOneCycle: BenchmarkDependentLoad's walk visits every line
// before it comes back (a shorter cycle would stay in the cache and
// measure it instead of memory).
func TestChainIsOneCycle(t *testing.T) {
	const n = 1000
	next := chain(n)
	seen := map[int64]bool{}
	p := int64(0)
	for range n {
		if seen[p] || p%8 != 0 {
			t.Fatalf("line %d visited twice or not a line start", p/8)
		}
		seen[p] = true
		p = next[p]
	}
	if p != 0 || len(seen) != n {
		t.Fatalf("%d lines in the cycle, want %d", len(seen), n)
	}
}
