package matcher

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBehaviourOnWAL runs the matcher's behaviour tests on the journal
// production uses, the write-ahead log, not only on the recorder.
func TestBehaviourOnWAL(t *testing.T) {
	tests := map[string]func(*testing.T){
		"ExpectedSenderVerifies":            TestExpectedSenderVerifies,
		"WrongCodesCountAttemptsThenFail":   TestWrongCodesCountAttemptsThenFail,
		"OtherSenderNeverTouchesSession":    TestOtherSenderNeverTouchesSession,
		"CaptureMode":                       TestCaptureMode,
		"CaptureCodeCollisions":             TestCaptureCodeCollisions,
		"InvalidCodes":                      TestInvalidCodes,
		"ExpiredNeverVerifies":              TestExpiredNeverVerifies,
		"SingleUse":                         TestSingleUse,
		"Supersede":                         TestSupersede,
		"Cancel":                            TestCancel,
		"Idempotency":                       TestIdempotency,
		"Dedupe":                            TestDedupe,
		"ConcurrentRedeliveriesProcessOnce": TestConcurrentRedeliveriesProcessOnce,
		"MultipartOutOfOrder":               TestMultipartOutOfOrder,
		"WaitWakesOnChange":                 TestWaitWakesOnChange,
		"ReplayRebuildsState":               TestReplayRebuildsState,
		"ConcurrentCreatesAndMatches":       TestConcurrentCreatesAndMatches,
		"PageToken":                         TestPageToken,
		"WaitLeavesNoWatcher":               TestWaitLeavesNoWatcher,
		"SupersedeOnlySameKey":              TestSupersedeOnlySameKey,
		"CaptureGuessBudget":                TestCaptureGuessBudget,
		"CaptureCandidateTokens":            TestCaptureCandidateTokens,
		"CaptureWindowsAreNotGuesses":       TestCaptureWindowsAreNotGuesses,
		"PendingCounts":                     TestPendingCounts,
		"ManyRecordsInOneAppend":            TestManyRecordsInOneAppend,
		"SpendNonce":                        TestSpendNonce,
	}
	onWAL = true
	defer func() { onWAL = false }()
	for name, fn := range tests {
		t.Run(name, fn)
	}
}

// TestSupersedeOnlySameKey: a create by key B for the same sender and
// number leaves key A's session alone; the older session wins a match, a
// wrong code counts against both.
func TestSupersedeOnlySameKey(t *testing.T) {
	m, _, _ := newTest(t)
	mk := func(key, code string) Session {
		t.Helper()
		s, _, err := m.Create(CreateRequest{Key: key, Number: alice, Code: code, To: to, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a := mk("a", "111111")
	b := mk("b", "222222")
	if got := get(t, m, a.ID); got.Status != Pending {
		t.Fatalf("key b's create touched key a's session: %+v", got)
	}
	if o := ingest(t, m, sms(alice, "000000")); o.Kind != Attempted || o.SessionID != a.ID {
		t.Fatalf("wrong code: %+v", o)
	}
	if ga, gb := get(t, m, a.ID), get(t, m, b.ID); ga.Attempts != 1 || gb.Attempts != 1 {
		t.Fatalf("attempts a=%d b=%d, want 1 and 1", ga.Attempts, gb.Attempts)
	}
	if o := ingest(t, m, sms(alice, "222222")); o.Kind != Matched || o.SessionID != b.ID {
		t.Fatalf("b's code: %+v", o)
	}
	if got := get(t, m, a.ID); got.Status != Pending {
		t.Fatalf("b's match touched a: %+v", got)
	}
	// Key a supersedes its own session only; with the same code as key c's
	// newer session, the older one wins.
	a2 := mk("a", "333333")
	c := mk("c", "333333")
	if got := get(t, m, a.ID); got.Status != Cancelled || got.Reason != "superseded" {
		t.Fatalf("a's own supersede: %+v", got)
	}
	if o := ingest(t, m, sms(alice, "333333")); o.Kind != Matched || o.SessionID != a2.ID {
		t.Fatalf("same code: %+v, want the older %s", o, a2.ID)
	}
	if o := ingest(t, m, sms(alice, "333333")); o.Kind != Matched || o.SessionID != c.ID {
		t.Fatalf("same code again: %+v, want %s", o, c.ID)
	}
}

// TestSupersedeOnlySameKeyAcrossRestart: coexisting sessions of one pair
// come back from a snapshot in creation order (the older still wins).
func TestSupersedeOnlySameKeyAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	var ids []string
	for i, key := range []string{"k1", "k2", "k3", "k4", "k5"} {
		c.Add(time.Second)
		s, _, err := m.Create(CreateRequest{Key: key, Number: alice, Code: "424242", To: to, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(i, err)
		}
		ids = append(ids, s.ID)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	for i, want := range ids {
		o, err := m2.Ingest(sms(alice, "424242"), IngestOptions{})
		if err != nil || o.Kind != Matched || o.SessionID != want {
			t.Fatalf("match %d after restart: %+v %v, want %s", i, o, err, want)
		}
	}
}

// TestCaptureGuessBudget: every SMS that reaches capture matching is one
// guess, matched or not, and also when the sender's own session absorbs it
// as an attempt; past the budget the right code no longer matches.
func TestCaptureGuessBudget(t *testing.T) {
	m, c, _ := newTest(t)
	m.guesses.perHour = 3
	capture := func() Session {
		t.Helper()
		s, _, err := m.Create(CreateRequest{Key: "k", To: to, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	victim, other := capture(), capture()
	// A hit costs a guess.
	if o := ingest(t, m, sms(mallet, other.Code)); o.Kind != Matched || !o.CaptureTried {
		t.Fatalf("hit: %+v", o)
	}
	// A miss absorbed by the sender's own session costs a guess too.
	if _, _, err := m.Create(CreateRequest{Key: "k", Number: mallet, Code: "999999", To: to, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if o := ingest(t, m, sms(mallet, "123456")); o.Kind != Attempted || !o.CaptureTried {
		t.Fatalf("absorbed miss: %+v", o)
	}
	// A plain miss costs one.
	if o := ingest(t, m, sms(mallet, "654321")); o.Kind != Attempted || !o.CaptureTried {
		t.Fatalf("miss: %+v", o)
	}
	// The budget (3) is spent: the right code is refused.
	o := ingest(t, m, sms(mallet, victim.Code))
	if o.Kind == Matched || !o.CaptureRefused || o.CaptureTried {
		t.Fatalf("past the budget: %+v", o)
	}
	if got := get(t, m, victim.ID); got.Status != Pending {
		t.Fatalf("victim = %+v", got)
	}
	// Another sender has its own budget; and the budget refills with time.
	c.Add(20 * time.Minute) // one guess back (3 an hour)
	if o := ingest(t, m, sms(mallet, victim.Code)); o.Kind != Matched || o.SessionID != victim.ID {
		t.Fatalf("after refill: %+v", o)
	}
}

// TestCaptureCandidateTokens pins docs/matching.md: a text of more than three
// candidate tokens matches no capture session; tokens are runs joined by
// single spaces, '-' or '.', ended by a newline or anything else.
func TestCaptureCandidateTokens(t *testing.T) {
	cases := []struct {
		text  string
		match bool
	}{
		{"%s", true},
		{"Code %s", true},
		{"Code: %s", true},
		{"my code is %s thanks", true},
		{"%s\n", true},
		{"a\nb\n%s", true},       // three tokens
		{"a\nb\nc\n%s", false},   // four tokens
		{"a, b, c, %s", false},   // four tokens
		{"x%s", false},           // not a whole token
		{"%s7", false},           // not a whole token
		{"1 %s", false},          // the digit run is 1+code
		{"a  b  c  d %s", false}, // double spaces end tokens: five
		{"%s and %s", false},     // one token with two digit runs offers only itself, whole
	}
	for _, tc := range cases {
		t.Run(tc.text, func(t *testing.T) {
			m, _, _ := newTest(t)
			s := create(t, m, "", "")
			text := strings.ReplaceAll(tc.text, "%s", s.Code)
			o := ingest(t, m, sms(mallet, text))
			if (o.Kind == Matched) != tc.match {
				t.Fatalf("%q: %+v, want match %v", text, o, tc.match)
			}
		})
	}
}

// TestCaptureWindowsAreNotGuesses: before, one long SMS tried every
// code-shaped window of its text (about 800 in a long SMS) and verified
// whatever capture session it hit. A code hidden in a run of digits, or one
// token among many, now matches nothing.
func TestCaptureWindowsAreNotGuesses(t *testing.T) {
	m, _, _ := newTest(t)
	var codes []string
	var ids []string
	for range 20 {
		s := create(t, m, "", "")
		codes, ids = append(codes, s.Code), append(ids, s.ID)
	}
	spaced := func(s string) string { return strings.Join(strings.Split(s, ""), " ") }
	texts := []string{
		"9 " + spaced(strings.Join(codes, "")) + " 9",    // every code is a window of one spaced run
		strings.Join(codes, ", "),                        // every code is a token: 20 tokens
		"codes: " + strings.Join(codes, "-") + " thanks", // one long token
	}
	for _, text := range texts {
		if o := ingest(t, m, sms(mallet, text)); o.Kind == Matched {
			t.Fatalf("%.40q… hijacked %s", text, o.SessionID)
		}
	}
	for _, id := range ids {
		if got := get(t, m, id); got.Status != Pending {
			t.Fatalf("session %s = %s", id, got.Status)
		}
	}
}

// TestPendingCounts: the counts kept as sessions come and go equal a walk
// over every session.
func TestPendingCounts(t *testing.T) {
	m, c, _ := newTest(t)
	walk := func() map[string]int {
		out := map[string]int{}
		for i := range m.shards {
			sh := &m.shards[i]
			sh.mu.Lock()
			for _, s := range sh.byID {
				if s.status == Pending {
					out[s.to]++
				}
			}
			sh.mu.Unlock()
		}
		return out
	}
	check := func(step string) {
		t.Helper()
		got, want := m.PendingByNumber(), walk()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: counts %v, walk %v", step, got, want)
		}
		total := 0
		for _, n := range want {
			total += n
		}
		if m.Pending() != total {
			t.Fatalf("%s: Pending() = %d, want %d", step, m.Pending(), total)
		}
	}
	a := create(t, m, alice, "111111")
	create(t, m, mallet, "222222")
	other := "+14155550101"
	if _, _, err := m.Create(CreateRequest{Key: "k", Number: alice, Code: "333333", To: other, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	check("created")
	create(t, m, alice, "444444") // supersedes a
	check("superseded")
	ingest(t, m, sms(mallet, "222222"))
	check("verified")
	if _, err := m.Cancel(a.ID); !errors.Is(err, ErrNotPending) {
		t.Fatal(err)
	}
	c.Add(2 * time.Minute)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	check("expired")
}

// TestManyRecordsInOneAppend: the sweep journals every expired session of a
// shard at once and an unmatched message one record per opted-in key; the
// WAL journal took at most four records and panicked past that (a crash loop
// after downtime).
func TestManyRecordsInOneAppend(t *testing.T) {
	m, c, _ := newTest(t)
	for i := range 600 {
		if _, _, err := m.Create(CreateRequest{Key: "k", Number: fmt.Sprintf("+1415555%04d", i), Code: "482913", To: to, TTL: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(25 * time.Second)
	if err := m.Sweep(); err != nil {
		t.Fatal(err)
	}
	if m.Pending() != 0 {
		t.Fatalf("%d still pending after the sweep", m.Pending())
	}
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6"}
	o, err := m.Ingest(sms(mallet, "hello"), IngestOptions{UnmatchedKeys: keys})
	if err != nil || o.Kind != Unmatched || len(m.PendingUnmatched()) != len(keys) {
		t.Fatalf("unmatched with %d keys: %+v %v, %d events", len(keys), o, err, len(m.PendingUnmatched()))
	}
}

// TestRestartAfterDowntimeExpires reproduces the crash loop: 600 sessions
// with a 20 s TTL, stop, 25 s pass, start: the first sweep expires them all
// and a restart after that sees them expired.
func TestRestartAfterDowntimeExpires(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	var ids []string
	for i := range 600 {
		s, _, err := m.Create(CreateRequest{Key: "k", Number: fmt.Sprintf("+1415555%04d", i), Code: "482913", To: to, TTL: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(25 * time.Second)
	m2 := openDurable(t, dir, c)
	if err := m2.Sweep(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // crash after the sweep: the expiries are in the log
	defer m3.Close()
	for _, id := range ids {
		if s, err := m3.Get(id); err != nil || s.Status != Expired || s.FinishedAt.IsZero() {
			t.Fatalf("%s after restart: %+v %v", id, s, err)
		}
	}
	if n := len(m3.Unnotified(c.Now().Add(-time.Hour))); n != len(ids) {
		t.Fatalf("%d expiry events due, want %d", n, len(ids))
	}
}

// TestSpendNonce: a nonce is fresh once, also under concurrency.
func TestSpendNonce(t *testing.T) {
	m, _, _ := newTest(t)
	if fresh, err := m.SpendNonce("plivo", "n1"); !fresh || err != nil {
		t.Fatalf("first spend: %v %v", fresh, err)
	}
	if fresh, err := m.SpendNonce("plivo", "n1"); fresh || err != nil {
		t.Fatalf("second spend: %v %v", fresh, err)
	}
	if fresh, _ := m.SpendNonce("plivo-eu", "n1"); !fresh {
		t.Fatal("another provider entry's nonce space is separate")
	}
	// A message id equal to the nonce is not a spent nonce, and back.
	if o := ingest(t, m, Message{Provider: "plivo", MessageID: "n2", From: mallet, To: to, Text: "x"}); o.Duplicate {
		t.Fatal("message id collided with a nonce")
	}
	if fresh, _ := m.SpendNonce("plivo", "n2"); !fresh {
		t.Fatal("nonce collided with a message id")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	freshCount := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if fresh, err := m.SpendNonce("plivo", "race"); err == nil && fresh {
				mu.Lock()
				freshCount++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if freshCount != 1 {
		t.Fatalf("%d concurrent spends were fresh", freshCount)
	}
}

// TestSpentNonceSurvivesRestart: a spent nonce stays spent after a crash
// (log replay) and after a snapshot, for the retention window.
func TestSpentNonceSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	for _, n := range []string{"a", "b"} {
		if fresh, err := m.SpendNonce("plivo", n); !fresh || err != nil {
			t.Fatal(fresh, err)
		}
	}
	m2 := openDurable(t, dir, c) // crash: only the log
	if fresh, _ := m2.SpendNonce("plivo", "a"); fresh {
		t.Fatal("nonce fresh again after a crash")
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // from the snapshot
	if fresh, _ := m3.SpendNonce("plivo", "b"); fresh {
		t.Fatal("nonce fresh again after a snapshot")
	}
	if err := m3.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Hour + time.Minute) // past the retention (1h in openDurable)
	m4 := openDurable(t, dir, c)
	defer m4.Close()
	if fresh, _ := m4.SpendNonce("plivo", "a"); !fresh {
		t.Fatal("nonce kept past the retention")
	}
}
