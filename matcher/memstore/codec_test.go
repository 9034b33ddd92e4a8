package memstore

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

// compactRendered is enc.compact as it was when it rendered the id and the
// page token as strings (s.idString, s.tokenString) before encoding them:
// the reference the in-place encoding must match byte for byte.
func (e *enc) compactRendered(s *session) {
	id := s.idString()
	tok := s.tokenString()
	x := s.x
	if x == nil {
		x = &sessionExtra{}
	}
	l := s.labelSet()
	for _, v := range []string{id, s.key, l.api, s.number, s.code, s.to, l.country, l.language, x.callback, x.redirect} {
		e.str(v)
	}
	e.bytes(x.metadata)
	for _, v := range []string{tok, x.idemKey, x.reqHash} {
		e.str(v)
	}
	e.uv(uint64(s.maxAttempts))
	e.b = binary.AppendVarint(e.b, s.created)
	e.b = binary.AppendVarint(e.b, s.expires)
	e.u8(uint8(s.status))
	e.uv(uint64(s.attempts))
	verified := x.verifiedNumber
	if verified == "" && s.status == matcher.Verified {
		verified = s.number
	}
	e.str(verified)
	e.b = binary.AppendVarint(e.b, s.finished)
	e.str(s.providerName())
	e.str(s.messageID)
	e.str(reasons[s.reason()])
	e.u8(uint8(s.notified()))
	e.uv(uint64(len(x.routes)))
	for _, r := range x.routes {
		e.str(r.Channel)
		e.str(r.To)
	}
	e.str(x.clientCountry)
	var p proof
	if s.proof != nil {
		p = *s.proof
	}
	e.proof(p.via, p.signals, "")
}

// randomSession returns a session of random fields: either id prefix, any
// raw id and token bytes, set or empty extra fields, routes, proof.
func randomSession(t testing.TB, r *rand.Rand) *session {
	t.Helper()
	pick := func(vals ...string) string { return vals[r.IntN(len(vals))] }
	raw := func() [16]byte {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if r.IntN(8) == 0 { // the edges of the alphabet
			v := byte(0)
			if r.IntN(2) == 0 {
				v = 0xff
			}
			for i := range b {
				b[i] = v
			}
		}
		b[0] %= numShards // a raw id's first byte is its shard
		return b
	}
	id, tok := raw(), raw()
	prefixes := matcher.IDPrefixes()
	n := strconv.Itoa(r.IntN(1e6))
	statuses := []matcher.Status{matcher.Pending, matcher.Verified, matcher.Failed, matcher.Cancelled, matcher.Expired}
	v := matcher.Session{
		ID: prefixes[r.IntN(len(prefixes))] + idEncoding.EncodeToString(id[:]), PageToken: tokenPrefix + idEncoding.EncodeToString(tok[:]),
		Key: pick("k", "key-"+n), API: pick("", "v1"), Number: pick("", "+1415"+n), Code: pick("482913", "A-"+n), To: pick(to, "+1555"+n),
		Country: pick("", "US"), Language: pick("", "en"), Callback: pick("", "https://cb/"+n), Redirect: pick("", "https://r/"+n),
		IdemKey: pick("", "idem-"+n), ReqHash: pick("", "h"+n), MaxAttempts: r.IntN(70000) % (1 << 16), Attempts: r.IntN(5),
		CreatedAt: time.Unix(0, r.Int64()), ExpiresAt: time.Unix(0, r.Int64N(1<<62)), Status: statuses[r.IntN(len(statuses))],
		Notified: matcher.Notified(r.IntN(int(matcher.Dead) + 1)), ClientCountry: pick("", "DE"),
	}
	if r.IntN(3) == 0 {
		v.Metadata = []byte(`{"n":` + n + `}`)
	}
	if r.IntN(2) == 0 {
		v.Routes = []matcher.Route{{Channel: matcher.ChannelSMS, To: v.To}, {Channel: matcher.ChannelWhatsApp, To: "+1666" + n}}
	}
	if v.Status != matcher.Pending {
		v.FinishedAt = time.Unix(0, r.Int64())
		v.Provider, v.MessageID = pick("twilio", "p"+n), pick("", "SM"+n)
		v.Reason = matcher.Reason(v.Status, pick("", "max_attempts", "cancelled_by_api", "line_type_rejected"))
		v.VerifiedNumber = pick("", v.Number, "+1777"+n)
		v.Via = matcher.Route{Channel: matcher.ChannelSMS, To: v.To}
		v.Signals = matcher.Signals{LineType: pick("", "mobile"), Carrier: pick("", "T-Mobile "+n), Forwarded: r.IntN(2) == 0, SenderSessions24h: r.IntN(3)}
	}
	s, ok := fromView(&v)
	if !ok {
		t.Fatalf("fromView %+v", v)
	}
	return s
}

// TestCompactIDsInPlace: a session's encoding, its id and page token
// rendered into the buffer, is byte for byte what it was when they were
// rendered as strings first, on random sessions, appended after other
// bytes (as a snapshot's sessions are).
func TestCompactIDsInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var got, want enc
	for i := range 5000 {
		s := randomSession(t, r)
		got.compact(s)
		want.compactRendered(s)
		if !bytes.Equal(got.b, want.b) {
			t.Fatalf("session %d (%s): encoded\n%x\nwant\n%x", i, s.idString(), got.b, want.b)
		}
		if i%64 == 0 { // a fresh buffer now and then: growth from empty and from full
			got.b, want.b = nil, nil
		}
	}
}

// TestCompactAllocs: a session encodes into a buffer that has room with no
// allocation: it made two, its id and page token rendered as strings.
func TestCompactAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s := randomSession(t, r)
	e := enc{b: make([]byte, 0, 4096)}
	if n := testing.AllocsPerRun(100, func() {
		e.b = e.b[:0]
		e.compact(s)
	}); n != 0 {
		t.Errorf("encoding a session makes %v allocations, want 0", n)
	}
	rec := Record{Op: OpCreate, At: time.Unix(1, 0), sess: s}
	buf := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(100, func() { buf = encodeRecord(buf[:0], &rec) }); n != 0 {
		t.Errorf("encoding an OpCreate record makes %v allocations, want 0", n)
	}
}

// BenchmarkSnapshotPayload copies 100k pending sessions into a snapshot
// payload's parts (the sessions' sections, the rest empty), as Snapshot
// does before it writes the file: its allocations and bytes per snapshot.
func BenchmarkSnapshotPayload(b *testing.B) {
	const n = 100_000
	m := New(Options{})
	from := senders(n)
	for i := range n {
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", API: "v1", Country: "US", Language: "en", Number: from[i], To: to, TTL: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		parts, _, _ := m.snapshotParts(func() uint64 { return 0 }, now)
		size := 0
		for _, p := range parts {
			size += len(p)
		}
		b.SetBytes(int64(size))
	}
}

// BenchmarkCreateDurable creates expected-sender sessions in a store
// journaled to a log, one writer waiting for each: its allocations per
// create, of the record's encoding and the log's group commit with the
// store's own.
func BenchmarkCreateDurable(b *testing.B) {
	m, err := Open(b.TempDir(), Options{}, DurableOptions{SnapshotEvery: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	benchCreates(b, m)
	b.StopTimer() // closing snapshots: not a create's
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
}

// TestRecordInPlace: a record encoded in place after its length is what
// it was as a record encoded on its own then copied after its length:
// stored parts and unmatched events of every length (one byte of length
// and two), after other bytes; and it allocates nothing in a buffer with
// room.
func TestRecordInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var got, want enc
	for i := range 2000 {
		msg := matcher.Message{Provider: "twilio", MessageID: "SM" + strconv.Itoa(i), From: "+1415" + strconv.Itoa(i), To: to,
			Text: strings.Repeat("x", r.IntN(400)), Parts: 2, Part: 1, PartsRef: "ref", Forwarded: r.IntN(2) == 0}
		rec := Record{Op: OpPart, Part: &Part{Message: msg}}
		if i%2 == 1 {
			rec = Record{Op: OpUnmatched, At: time.Unix(0, r.Int64()), Unmatched: &matcher.UnmatchedEvent{ID: "ev" + strconv.Itoa(i), Key: "k", Message: msg}}
		}
		got.record(&rec)
		want.bytes(encodeRecord(nil, &rec))
		if !bytes.Equal(got.b, want.b) {
			t.Fatalf("record %d (%d bytes of text): encoded in place differs", i, len(msg.Text))
		}
		if i%100 == 0 {
			got.b, want.b = nil, nil
		}
	}
	rec := Record{Op: OpPart, Part: &Part{Message: matcher.Message{Provider: "twilio", MessageID: "SM1", Text: strings.Repeat("y", 300), Parts: 2, Part: 1}}}
	e := enc{b: make([]byte, 0, 4096)}
	if n := testing.AllocsPerRun(100, func() {
		e.b = e.b[:0]
		e.record(&rec)
	}); n != 0 {
		t.Errorf("a record encoded in place makes %v allocations, want 0", n)
	}
}

// heldFS is the OS's file system whose file syncs wait while hold is set.
type heldFS struct {
	wal.OS
	hold atomic.Pointer[chan struct{}]
}

type heldFile struct {
	*os.File
	fs *heldFS
}

func (f *heldFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	file, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &heldFile{file, f}, nil
}

func (f *heldFile) Sync() error {
	if hold := f.fs.hold.Load(); hold != nil {
		<-*hold
	}
	return f.File.Sync()
}

// TestJournalAppendAllocs: records appended to the log together are
// encoded into one pooled buffer: ten take two allocations (their bounds
// and slices), where each was encoded into a buffer of its own, grown from
// nothing; four or fewer none. The log's writer is held in a sync the
// while, so that it allocates no batch of its own.
func TestJournalAppendAllocs(t *testing.T) {
	hfs := &heldFS{}
	log, err := wal.Open(t.TempDir(), wal.Options{FS: hfs}, func(uint64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	hfs.hold.Store(&hold)
	j := walJournal{log}
	first := j.Append(Record{Op: OpExpire, ID: newID("vrf_", 1)}) // the writer takes it, and waits
	defer func() {
		hfs.hold.Store(nil)
		close(hold)
		if err := first.Wait(); err != nil {
			t.Error(err)
		}
		if err := log.Close(); err != nil {
			t.Error(err)
		}
	}()
	for _, tc := range []struct{ recs, allocs int }{{1, 0}, {4, 0}, {10, 2}} {
		recs := make([]Record, tc.recs)
		for i := range recs {
			recs[i] = Record{Op: OpDelivered, At: time.Unix(1, 0), ID: newID("vrf_", i)}
		}
		j.Append(recs...) // the pool holds a buffer
		// The pending batch grows its buffer now and then: fewer times than
		// the runs, which the whole-number average drops.
		if n := testing.AllocsPerRun(200, func() { j.Append(recs...) }); n > float64(tc.allocs) {
			t.Errorf("appending %d records: %v allocations, want at most %d", tc.recs, n, tc.allocs)
		}
	}
}

// TestJournalPoolDropsLarge: an append of thousands of records (a sweep's
// expiries) does not leave its grown buffer in the pool, where every later
// append would keep it alive (review R3: 5,000 expiries left ~220 KB).
func TestJournalPoolDropsLarge(t *testing.T) {
	log, err := wal.Open(t.TempDir(), wal.Options{}, func(uint64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	recs := make([]Record, 5000)
	for i := range recs {
		recs[i] = Record{Op: OpExpire, At: time.Unix(1, 0), ID: newID("vrf_", i)}
	}
	if err := (walJournal{log}).Append(recs...).Wait(); err != nil {
		t.Fatal(err)
	}
	var held []*[]byte
	for range 4 { // what the pool gives this goroutine next
		bp := encPool.Get().(*[]byte)
		if cap(*bp) > maxPooledEnc {
			t.Errorf("the pool holds a buffer of %d bytes, more than %d", cap(*bp), maxPooledEnc)
		}
		held = append(held, bp)
	}
	for _, bp := range held {
		encPool.Put(bp)
	}
}
