package matcher

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

func (r *recorder) ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ops []Op
	for _, x := range r.recs {
		ops = append(ops, x.Op)
	}
	return ops
}

const (
	to     = "+14155550100"
	alice  = "+14155550123"
	mallet = "+14155550999"
)

// onWAL makes newTest open a durable matcher on the production write-ahead
// log instead of recording into memory (TestBehaviourOnWAL sets it).
var onWAL bool

func newTest(t *testing.T) (*Matcher, *clock, *recorder) {
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

func create(t *testing.T, m *Matcher, number, code string) Session {
	t.Helper()
	s, _, err := m.Create(CreateRequest{Key: "k", Number: number, Code: code, To: to, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var msgID atomic.Int64

func sms(from, text string) Message {
	return Message{Provider: "tw", MessageID: fmt.Sprint("SM", msgID.Add(1)), From: from, To: to, Text: text}
}

func ingest(t *testing.T, m *Matcher, msg Message) Outcome {
	t.Helper()
	o, err := m.Ingest(msg, IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func get(t *testing.T, m *Matcher, id string) Session {
	t.Helper()
	s, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestExpectedSenderVerifies(t *testing.T) {
	for _, text := range []string{"482913", " 482913\n", "Code: 482913", "482 913", "４８２９１３", "٤٨٢٩١٣", "My code is 482913 thanks"} {
		t.Run(text, func(t *testing.T) {
			m, _, _ := newTest(t)
			s := create(t, m, alice, "482913")
			o := ingest(t, m, sms(alice, text))
			if o.Kind != Matched || o.SessionID != s.ID {
				t.Fatalf("outcome = %+v", o)
			}
			got := get(t, m, s.ID)
			if got.Status != Verified || got.VerifiedNumber != alice || got.Provider != "tw" || got.MessageID == "" || got.FinishedAt.IsZero() {
				t.Fatalf("session = %+v", got)
			}
		})
	}
}

func TestWrongCodesCountAttemptsThenFail(t *testing.T) {
	m, _, j := newTest(t)
	s := create(t, m, alice, "482913")
	for i, text := range []string{"4829135", "482914"} {
		if o := ingest(t, m, sms(alice, text)); o.Kind != Attempted {
			t.Fatalf("attempt %d: %+v", i, o)
		}
	}
	if got := get(t, m, s.ID); got.Status != Pending || got.Attempts != 2 {
		t.Fatalf("after 2 wrong codes: %+v", got)
	}
	if o := ingest(t, m, sms(alice, "000000")); o.Kind != Exhausted {
		t.Fatalf("3rd wrong code: %+v", o)
	}
	if got := get(t, m, s.ID); got.Status != Failed || got.Attempts != 3 {
		t.Fatalf("after 3 wrong codes: %+v", got)
	}
	// A failed session never verifies.
	if o := ingest(t, m, sms(alice, "482913")); o.Kind != Unmatched {
		t.Fatalf("right code after failure: %+v", o)
	}
	if got := get(t, m, s.ID); got.Status != Failed {
		t.Fatal("failed session changed")
	}
	want := []Op{OpCreate, OpAttempt, OpProcessed, OpAttempt, OpProcessed, OpFail, OpProcessed, OpProcessed}
	if !reflect.DeepEqual(j.ops(), want) {
		t.Fatalf("journal = %v, want %v", j.ops(), want)
	}
}

func TestOtherSenderNeverTouchesSession(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	for range 5 {
		if o := ingest(t, m, sms(mallet, "482913")); o.Kind != Unmatched {
			t.Fatalf("other sender: %+v", o)
		}
	}
	if got := get(t, m, s.ID); got.Status != Pending || got.Attempts != 0 {
		t.Fatalf("session touched: %+v", got)
	}
	// Same sender, other receiving number: no match either.
	msg := sms(alice, "482913")
	msg.To = "+14155550101"
	if o := ingest(t, m, msg); o.Kind != Unmatched {
		t.Fatalf("other number: %+v", o)
	}
}

func TestCaptureMode(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, "", "")
	if len(s.Code) != 6 || !s.Capture() {
		t.Fatalf("generated code %q", s.Code)
	}
	if o := ingest(t, m, sms(mallet, "nope 000000")); o.Kind != Unmatched {
		t.Fatalf("wrong code: %+v", o)
	}
	o := ingest(t, m, sms(mallet, "Code "+s.Code))
	if o.Kind != Matched || o.SessionID != s.ID {
		t.Fatalf("capture: %+v", o)
	}
	if got := get(t, m, s.ID); got.VerifiedNumber != mallet || got.Status != Verified {
		t.Fatalf("capture session = %+v", got)
	}
	// NoCapture (sender over its unmatched limit) skips capture sessions.
	s2 := create(t, m, "", "")
	if o, _ := m.Ingest(sms(alice, s2.Code), IngestOptions{NoCapture: true}); o.Kind != Unmatched {
		t.Fatalf("NoCapture matched: %+v", o)
	}
}

func TestCaptureCodeCollisions(t *testing.T) {
	m, _, _ := newTest(t)
	// A capture code is always mogate's: a chosen one could be probed
	// (409 code_in_use) or guessed.
	for _, code := range []string{"7391", "739", "48291357"} {
		if _, _, err := m.Create(CreateRequest{Key: "k", Code: code, To: to, TTL: time.Minute}); !errors.Is(err, ErrCodeNotAllowed) {
			t.Fatalf("capture code %q: %v", code, err)
		}
	}
	// Generated codes are at least MinCaptureCodeLen digits, even when
	// code_length is shorter, and retry past collisions.
	m2 := New(Options{CodeLength: 4})
	seen := map[string]bool{}
	for range 200 {
		s, _, err := m2.Create(CreateRequest{Key: "k", To: to, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Code) != MinCaptureCodeLen {
			t.Fatalf("capture code %q shorter than %d", s.Code, MinCaptureCodeLen)
		}
		if seen[s.Code] {
			t.Fatalf("code %s issued twice while pending", s.Code)
		}
		seen[s.Code] = true
	}
	// Expected-sender sessions keep code_length.
	if s, _, err := m2.Create(CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Minute}); err != nil || len(s.Code) != 4 {
		t.Fatalf("expected-sender code %q, %v", s.Code, err)
	}
}

func TestInvalidCodes(t *testing.T) {
	m, _, _ := newTest(t)
	for _, c := range []string{"ab:cd", "12345678901234567", "!!!"} {
		if _, _, err := m.Create(CreateRequest{Key: "k", Number: alice, Code: c, To: to, TTL: time.Minute}); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("code %q: %v", c, err)
		}
	}
}

func TestExpiredNeverVerifies(t *testing.T) {
	m, c, j := newTest(t)
	s := create(t, m, alice, "482913")
	c.Add(10 * time.Minute)
	if got := get(t, m, s.ID); got.Status != Expired {
		t.Fatalf("status past expiry = %v", got.Status)
	}
	if o := ingest(t, m, sms(alice, "482913")); o.Kind != Unmatched {
		t.Fatalf("expired session matched: %+v", o)
	}
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if ops := j.ops(); ops[len(ops)-1] != OpExpire {
		t.Fatalf("sweep did not record the expiry: %v", ops)
	}
	// Retention: the finished session is dropped an hour after it finished.
	c.Add(59 * time.Minute)
	_ = m.Sweep()
	if _, err := m.Get(s.ID); err != nil {
		t.Fatal("dropped before retention")
	}
	c.Add(2 * time.Minute)
	_ = m.Sweep()
	if _, err := m.Get(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("kept past retention: %v", err)
	}
}

func TestSingleUse(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	ingest(t, m, sms(alice, "482913"))
	if o := ingest(t, m, sms(alice, "482913")); o.Kind != Unmatched {
		t.Fatalf("second verification: %+v", o)
	}
	if _, err := m.Cancel(s.ID); !errors.Is(err, ErrNotPending) {
		t.Fatalf("cancel verified: %v", err)
	}
}

func TestSupersede(t *testing.T) {
	m, _, _ := newTest(t)
	var changes []Session
	m.opt.OnChange = func(s Session) { changes = append(changes, s) }
	old := create(t, m, alice, "111111")
	nu := create(t, m, alice, "222222")
	if got := get(t, m, old.ID); got.Status != Cancelled || got.Reason != "superseded" {
		t.Fatalf("old = %+v", got)
	}
	if len(changes) != 1 || changes[0].ID != old.ID {
		t.Fatalf("OnChange = %+v", changes)
	}
	if o := ingest(t, m, sms(alice, "111111")); o.Kind != Attempted || o.SessionID != nu.ID {
		t.Fatalf("old code: %+v", o)
	}
	if o := ingest(t, m, sms(alice, "222222")); o.Kind != Matched || o.SessionID != nu.ID {
		t.Fatalf("new code: %+v", o)
	}
}

func TestCancel(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	got, err := m.Cancel(s.ID)
	if err != nil || got.Status != Cancelled || got.Reason != ReasonCancelledByAPI {
		t.Fatalf("Cancel = %+v %v", got, err)
	}
	if o := ingest(t, m, sms(alice, "482913")); o.Kind != Unmatched {
		t.Fatalf("cancelled matched: %+v", o)
	}
	for _, id := range []string{"nope", "vrf_aaaaaaaaaaaaaaaaaaaaaaaaaa", ""} {
		if _, err := m.Cancel(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Cancel(%q) = %v", id, err)
		}
	}
}

func TestIdempotency(t *testing.T) {
	m, _, _ := newTest(t)
	req := CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Minute, IdemKey: "abc", ReqHash: "h1"}
	a, replayed, err := m.Create(req)
	if err != nil || replayed {
		t.Fatal(err)
	}
	b, replayed, err := m.Create(req)
	if err != nil || !replayed || b.ID != a.ID || b.Code != a.Code {
		t.Fatalf("retry = %+v %v %v", b, replayed, err)
	}
	req.ReqHash = "h2"
	if _, _, err := m.Create(req); !errors.Is(err, ErrIdempotencyReused) {
		t.Fatalf("changed request: %v", err)
	}
	req.Key, req.ReqHash = "other-key", "h1"
	if c, replayed, err := m.Create(req); err != nil || replayed || c.ID == a.ID {
		t.Fatalf("another API key shares the idempotency key: %+v %v", c, err)
	}
}

func TestDedupe(t *testing.T) {
	m, _, j := newTest(t)
	s := create(t, m, alice, "482913")
	msg := sms(alice, "000000")
	first := ingest(t, m, msg)
	again := ingest(t, m, msg)
	if !again.Duplicate || again.Kind != first.Kind || again.SessionID != s.ID {
		t.Fatalf("redelivery = %+v (first %+v)", again, first)
	}
	if got := get(t, m, s.ID); got.Attempts != 1 {
		t.Fatalf("redelivery counted again: %d attempts", got.Attempts)
	}
	n := len(j.ops())
	ingest(t, m, msg)
	if len(j.ops()) != n {
		t.Fatal("redelivery wrote records")
	}
}

func TestConcurrentRedeliveriesProcessOnce(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	msg := sms(alice, "111111")
	var wg sync.WaitGroup
	var dups atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := m.Ingest(msg, IngestOptions{})
			if err != nil || o.SessionID != s.ID {
				t.Errorf("Ingest = %+v %v", o, err)
			}
			if o.Duplicate {
				dups.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := get(t, m, s.ID); got.Attempts != 1 || dups.Load() != 49 {
		t.Fatalf("attempts = %d, duplicates = %d", got.Attempts, dups.Load())
	}
}

func TestJournalFailureIsNotAcknowledged(t *testing.T) {
	m, _, j := newTest(t)
	s := create(t, m, alice, "482913")
	j.fail.Store(true)
	msg := sms(alice, "482913")
	if _, err := m.Ingest(msg, IngestOptions{}); err == nil {
		t.Fatal("Ingest succeeded with a failing journal")
	}
	j.fail.Store(false)
	// The provider retries: not treated as a duplicate of a failed attempt.
	if o := ingest(t, m, msg); o.Duplicate {
		t.Fatalf("retry after failure was taken as duplicate: %+v", o)
	}
	_ = s
}

func TestMultipartOutOfOrder(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	// The code straddles parts 2 and 3, which arrive before part 1.
	parts := map[int]string{1: "Your verification code is ", 2: "482", 3: "913 thanks"}
	for _, n := range []int{3, 2} {
		msg := sms(alice, parts[n])
		msg.Parts, msg.Part, msg.PartsRef = 3, n, "ref9"
		if o := ingest(t, m, msg); o.Kind != PartStored {
			t.Fatalf("part %d: %+v", n, o)
		}
	}
	if got := get(t, m, s.ID); got.Status != Pending || got.Attempts != 0 {
		t.Fatalf("partial message touched the session: %+v", got)
	}
	msg := sms(alice, parts[1])
	msg.Parts, msg.Part, msg.PartsRef = 3, 1, "ref9"
	if o := ingest(t, m, msg); o.Kind != Matched {
		t.Fatalf("last part: %+v", o)
	}
}

func TestWaitWakesOnChange(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	done := make(chan Session)
	go func() {
		got, _ := m.Wait(context.Background(), s.ID)
		done <- got
	}()
	for m.watchers() == 0 {
		time.Sleep(time.Millisecond)
	}
	ingest(t, m, sms(alice, "482913"))
	select {
	case got := <-done:
		if got.Status != Verified {
			t.Fatalf("Wait = %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait not woken")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	s2 := create(t, m, mallet, "482913")
	if got, err := m.Wait(ctx, s2.ID); err != nil || got.Status != Pending {
		t.Fatalf("Wait with deadline = %+v %v", got, err)
	}
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
	_, _ = m.Cancel(b.ID)
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

func TestConcurrentCreatesAndMatches(t *testing.T) {
	m := New(Options{})
	var wg sync.WaitGroup
	var verified atomic.Int32
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				from := fmt.Sprintf("+1415%07d", g*1000+i)
				s, _, err := m.Create(CreateRequest{Key: "k", Number: from, To: to, TTL: time.Minute})
				if err != nil {
					t.Error(err)
					return
				}
				o, err := m.Ingest(Message{Provider: "p", MessageID: s.ID, From: from, To: to, Text: s.Code}, IngestOptions{})
				if err == nil && o.Kind == Matched {
					verified.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if verified.Load() != 1600 {
		t.Fatalf("verified %d of 1600", verified.Load())
	}
	if n := m.PendingByNumber()[to]; n != 0 {
		t.Fatalf("pending = %d", n)
	}
}

func TestPageToken(t *testing.T) {
	m, _, _ := newTest(t)
	s := create(t, m, alice, "482913")
	if got, err := m.ByPageToken(s.PageToken); err != nil || got.ID != s.ID {
		t.Fatalf("ByPageToken = %+v %v", got, err)
	}
	if s.PageToken == s.ID || len(s.PageToken) < 26 {
		t.Fatal("page token not distinct")
	}
	if _, err := m.ByPageToken(s.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("session id works as page token")
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
		if got, err := m.Wait(ctx, s.ID); err != nil || got.Status != Pending {
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
