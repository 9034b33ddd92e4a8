package memstore

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

var bg = context.Background()

// due returns the claimable events by id, leaving them claimable.
func due(t *testing.T, m *Store) map[string]matcher.Event {
	t.Helper()
	evs, err := m.ClaimEvents(bg, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]matcher.Event{}
	for _, ev := range evs {
		out[ev.ID] = ev
	}
	return out
}

// ack acknowledges an event (dead: given up on).
func ack(t *testing.T, m *Store, ev matcher.Event, dead bool) {
	t.Helper()
	if err := m.AckEvent(bg, ev, dead); err != nil {
		t.Fatal(err)
	}
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// recorder is a journal that keeps every record, optionally failing.
type recorder struct {
	mu   sync.Mutex
	recs []Record
	fail atomic.Bool
}

type result struct{ err error }

func (r result) Wait() error { return r.err }

func (r *recorder) Append(recs ...Record) Commit {
	r.mu.Lock()
	for _, x := range recs {
		if x.Session != nil {
			s := *x.Session
			x.Session = &s
		}
		r.recs = append(r.recs, x)
	}
	r.mu.Unlock()
	if r.fail.Load() {
		return result{errors.New("disk on fire")}
	}
	return result{}
}

const (
	to     = "+14155550100"
	to2    = "+14155550101" // a second pool number: routes on two numbers
	alice  = "+14155550123"
	mallet = "+14155550999"
)

// onWAL makes newTest open a durable matcher on the production write-ahead
// log instead of recording into memory (TestBehaviourOnWAL sets it).
var onWAL bool

func newTest(t *testing.T) (*Store, *clock, *recorder) {
	t.Helper()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	j := &recorder{}
	o := Options{Journal: j, Now: c.Now, MaxAttempts: 3, CodeLength: 6, Retention: time.Hour}
	if !onWAL {
		return New(o), c, j
	}
	m, err := Open(t.TempDir(), o, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.tap = func(recs []Record) { j.Append(recs...) } // for assertions only: the WAL journals
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, c, j
}

func create(t *testing.T, m *Store, number, code string) matcher.Session {
	t.Helper()
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: number, Code: code, To: to, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var msgID atomic.Int64

func sms(from, text string) matcher.Message {
	return matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", msgID.Add(1)), From: from, To: to, Text: text}
}

func ingest(t *testing.T, m *Store, msg matcher.Message) matcher.Outcome {
	t.Helper()
	o, err := m.ingestOnce(msg, matcher.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func get(t *testing.T, m *Store, id string) matcher.Session {
	t.Helper()
	s, err := m.get(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCaptureCodeCollisions(t *testing.T) {
	m, _, _ := newTest(t)
	// A capture code is always mogate's: a chosen one could be probed
	// (409 code_in_use) or guessed.
	for _, code := range []string{"7391", "739", "48291357"} {
		if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Code: code, To: to, TTL: time.Minute}); !errors.Is(err, matcher.ErrCodeNotAllowed) {
			t.Fatalf("capture code %q: %v", code, err)
		}
	}
	// Generated codes are at least MinCaptureCodeLen digits, even when
	// code_length is shorter, and retry past collisions.
	m2 := New(Options{CodeLength: 4})
	seen := map[string]bool{}
	for range 200 {
		s, _, err := m2.createOnce(matcher.CreateRequest{Key: "k", To: to, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Code) != matcher.MinCaptureCodeLen {
			t.Fatalf("capture code %q shorter than %d", s.Code, matcher.MinCaptureCodeLen)
		}
		if seen[s.Code] {
			t.Fatalf("code %s issued twice while pending", s.Code)
		}
		seen[s.Code] = true
	}
	// Expected-sender sessions keep code_length.
	if s, _, err := m2.createOnce(matcher.CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Minute}); err != nil || len(s.Code) != 4 {
		t.Fatalf("expected-sender code %q, %v", s.Code, err)
	}
}

func TestJournalFailureIsNotAcknowledged(t *testing.T) {
	m, _, j := newTest(t)
	s := create(t, m, alice, "482913")
	j.fail.Store(true)
	msg := sms(alice, "482913")
	if _, err := m.ingestOnce(msg, matcher.IngestOptions{}); err == nil {
		t.Fatal("Ingest succeeded with a failing journal")
	}
	j.fail.Store(false)
	// The provider retries: not treated as a duplicate of a failed attempt.
	if o := ingest(t, m, msg); o.Duplicate {
		t.Fatalf("retry after failure was taken as duplicate: %+v", o)
	}
	_ = s
}

// TestReplayRebuildsState proves that every state change is a record: a
// fresh matcher fed the journal ends in the same state.
func TestReplayRebuildsState(t *testing.T) {
	m, c, j := newTest(t)
	a := create(t, m, alice, "482913")
	b := create(t, m, mallet, "111111")
	cap := create(t, m, "", "")
	sup := create(t, m, "+14155550777", "1234")
	create(t, m, "+14155550777", "5678")
	ingest(t, m, sms(alice, "482913"))
	ingest(t, m, sms(mallet, "000000"))
	ingest(t, m, sms("+14155550888", cap.Code))
	_, _ = m.cancel(b.ID)
	c.Add(11 * time.Minute)
	_ = m.Sweep()

	fresh := New(Options{Now: c.Now, Retention: time.Hour})
	for _, r := range j.recs {
		fresh.Replay(r)
	}
	for _, id := range []string{a.ID, b.ID, cap.ID, sup.ID} {
		want, got := get(t, m, id), get(t, fresh, id)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("replayed %s:\n got  %+v\n want %+v", id, got, want)
		}
	}
	if fresh.Len() != m.Len() {
		t.Errorf("Len = %d, want %d", fresh.Len(), m.Len())
	}
}

// TestWaitLeavesNoWatcher: a long-poll or heartbeat that times out removes
// its watcher; before the fix every timed-out Wait leaked one until the
// session ended.
func TestWaitLeavesNoWatcher(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if got, err := m.Wait(ctx, s.ID); err != nil || got.Status != matcher.Pending {
			t.Fatalf("Wait = %+v, %v", got, err)
		}
		cancel()
	}
	if n := m.watchers(); n != 0 {
		t.Fatalf("%d watchers left after 100 timed-out waits", n)
	}
	done := make(chan struct{})
	go func() { _, _ = m.Wait(context.Background(), s.ID); close(done) }()
	for m.watchers() == 0 {
		time.Sleep(time.Millisecond)
	}
	ingest(t, m, sms(alice, "482913"))
	<-done
	if n := m.watchers(); n != 0 {
		t.Fatalf("%d watchers left after the session verified", n)
	}
}

// TestTextReadToTheSameCut: the text is read up to where text.Scanner.Read
// cuts it (redisstore matches on that), not a character's byte past it: a
// code whose last digit is cut off verifies nothing, and one wholly before
// the cut verifies.
func TestTextReadToTheSameCut(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	// The byte at the limit continues a character: the 3 is cut off.
	if o := ingest(t, m, sms(alice, strings.Repeat("x ", 2045)+"482913\x80")); o.Kind == matcher.Matched {
		t.Fatalf("a code cut at the limit verified: %+v", o)
	}
	if o := ingest(t, m, sms(alice, strings.Repeat("x ", 2044)+"482913 \x80")); o.Kind != matcher.Matched || o.SessionID != s.ID {
		t.Fatalf("a code before the cut: %+v", o)
	}
}

// TestVerifiedIDsKept: the session ids of verifications, rendered into
// their shard's shared chunks (idArena), each of both prefixes, are their
// sessions' ids and stay so while the chunks fill up with the ids after
// them (some 70 a shard here: two chunks or more each).
func TestVerifiedIDsKept(t *testing.T) {
	m := New(Options{})
	const n = 64 * 70
	from := senders(n)
	ids := make([]string, n)
	for i := range n {
		prefix := idPrefixes[i%len(idPrefixes)]
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from[i], Code: "482913", To: to, TTL: time.Hour, IDPrefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = s.ID
	}
	got := make([]string, n)
	for i := range n {
		o, err := m.ingest(&matcher.Message{Provider: "tw", MessageID: fmt.Sprint(i), From: from[i], To: to, Text: "482913"}, matcher.IngestOptions{})
		if err != nil || o.Kind != matcher.Matched {
			t.Fatal(o, err)
		}
		got[i] = o.SessionID
	}
	for i := range n {
		if got[i] != ids[i] {
			t.Fatalf("verification %d: id %q, want %q", i, got[i], ids[i])
		}
	}
}
