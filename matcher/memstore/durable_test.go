package memstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/wal"
)

func openDurable(t *testing.T, dir string, c *clock) *Store {
	t.Helper()
	m, err := Open(dir, Options{Now: c.Now, Retention: time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// state renders every session and the dedupe table, for comparing a matcher
// with its recovered self.
func state(m *Store) string {
	var lines []string
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		for s := range sh.byID.all() {
			lines = append(lines, fmt.Sprintf("%+v", s.view()))
		}
		for k, s := range sh.byPair.all() {
			chain := []string{}
			for ; s != nil; s = s.nextOn(k.to) {
				chain = append(chain, s.idString())
			}
			lines = append(lines, fmt.Sprintf("pair %v -> %v", k, chain))
		}
		for to, byCode := range sh.byCode {
			for code, s := range byCode {
				lines = append(lines, fmt.Sprintf("code %s %s -> %s", to, code, s.idString()))
			}
		}
		sh.mu.Unlock()
	}
	for n, c := range m.pendingByNumber() {
		lines = append(lines, fmt.Sprintf("pending %s %d", n, c))
	}
	m.senders.mu.Lock()
	for k, list := range m.senders.t.all() {
		for _, e := range list.entries() {
			lines = append(lines, fmt.Sprintf("sender %q %q %d %x", k.key, k.sender, e.at, e.id))
		}
	}
	m.senders.mu.Unlock()
	m.dedupe.mu.Lock()
	m.dedupe.each(func(k seenKey, o matcher.Outcome, _ int64) {
		lines = append(lines, fmt.Sprintf("processed %x %+v", k, o))
	})
	m.dedupe.mu.Unlock()
	for i := range m.idem {
		for k, v := range m.idem[i].m {
			lines = append(lines, fmt.Sprintf("idem %q %s", k, v))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// workload makes every kind of state change.
func workload(t *testing.T, m *Store, tag string) {
	t.Helper()
	mk := func(number, code, idem string) matcher.Session {
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: number, Code: code, To: to, TTL: 10 * time.Minute, IdemKey: idem, ReqHash: "h", Metadata: []byte(`{"a":1}`), Callback: "https://x/cb"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	msg := func(from, text string) {
		if _, err := m.ingestOnce(matcher.Message{Provider: "tw", MessageID: tag + from + text, From: from, To: to, Text: text}, matcher.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a := mk("+14155550001", "111111", tag+"idem-a")
	mk("+14155550002", "222222", "")
	c := mk("+14155550003", "333333", "")
	mk("+14155550004", "444444", "")
	mk("+14155550004", "454545", "") // supersedes
	capture := mk("", "", "")
	msg("+14155550001", "111111")     // verify
	msg("+14155550002", "000000")     // attempt
	msg("+14155550009", capture.Code) // capture verify
	msg("+14155550010", "nothing")    // unmatched
	if _, err := m.cancel(c.ID); err != nil {
		t.Fatal(err)
	}
	// Routes on two numbers, calls, signals and a rejection by policy.
	routed := func(number, code string, routes ...matcher.Route) matcher.Session {
		s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: number, Code: code, To: routes[0].To, Routes: routes,
			ClientCountry: "US", TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	on := func(ch, to, from, text, reject string) {
		msg := matcher.Message{Provider: "meta", MessageID: tag + ch + from + text, From: from, To: to, Text: text, Channel: ch,
			LineType: "mobile", Carrier: "Carrier", SenderCountry: "US", Attestation: "A", Forwarded: true, RejectReason: reject}
		if _, err := m.ingestOnce(msg, matcher.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sms1, wa2 := matcher.Route{Channel: matcher.ChannelSMS, To: to}, matcher.Route{Channel: matcher.ChannelWhatsApp, To: to2}
	call2 := matcher.Route{Channel: matcher.ChannelCall, To: to2}
	routed("+14155550020", "202020", sms1, wa2)
	on(matcher.ChannelWhatsApp, to2, "+14155550020", "202020", "") // verified on the second number
	routed("+14155550021", "212121", sms1, call2)
	on(matcher.ChannelCall, to2, "+14155550021", "", "") // verified by a call
	routed("+14155550001", "232323", wa2, sms1)
	on(matcher.ChannelSMS, to, "+14155550001", "232323", matcher.ReasonLineTypeRejected) // refused by policy
	routed("+14155550022", "242424", sms1, wa2)
	routed("+14155550022", "252525", wa2) // supersedes through the shared number
	routed("+14155550023", "262626", sms1, wa2)
	on(matcher.ChannelWhatsApp, to2, "+14155550023", "000000", "") // attempt on the second number
	routed("+14155550024", "272727", wa2, sms1)                    // stays pending
	routedCapture, _, err := m.createOnce(matcher.CreateRequest{Key: "k", To: to, Routes: []matcher.Route{sms1, wa2}, TTL: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	on(matcher.ChannelWhatsApp, to2, "+14155550025", routedCapture.Code, "")
	if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", To: to2, Routes: []matcher.Route{wa2, sms1}, TTL: 10 * time.Minute}); err != nil {
		t.Fatal(err) // a capture session that stays pending on two numbers
	}
	part := matcher.Message{Provider: "vo", MessageID: tag + "p1", From: "+14155550011", To: to, Text: "part one", Parts: 2, Part: 1, PartsRef: tag}
	if _, err := m.ingestOnce(part, matcher.IngestOptions{}); err != nil {
		t.Fatal(err)
	}
	_ = a
}

func TestRestartAfterClose(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	workload(t, m, "x")
	before := state(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	if after := state(m2); after != before {
		t.Fatalf("state after restart differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
	// The stored part completes after the restart.
	o, err := m2.ingestOnce(matcher.Message{Provider: "vo", MessageID: "xp2", From: "+14155550011", To: to, Text: " two", Parts: 2, Part: 2, PartsRef: "x"}, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Unmatched {
		t.Fatalf("second part after restart: %+v %v", o, err)
	}
}

func TestCrashWithoutSnapshot(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	workload(t, m, "x")
	before := state(m)
	// No Close: the process "dies" with only the log on disk.
	m2 := openDurable(t, dir, c)
	if after := state(m2); after != before {
		t.Fatalf("state after crash differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
	// Redeliveries after the crash are duplicates, idempotency keys still work.
	o, err := m2.ingestOnce(matcher.Message{Provider: "tw", MessageID: "x+14155550001111111", From: "+14155550001", To: to, Text: "111111"}, matcher.IngestOptions{})
	if err != nil || !o.Duplicate || o.Kind != matcher.Matched {
		t.Fatalf("redelivery after crash: %+v %v", o, err)
	}
	if s, ok, _ := m2.LookupIdempotent(bg, "k", "xidem-a"); !ok || s.Status != matcher.Verified {
		t.Fatalf("idempotency key after crash: %+v %v", s, ok)
	}
}

func TestSnapshotThenCrash(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	workload(t, m, "a")
	if err := m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	workload(t, m, "b")
	if err := m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if segs := m.Log().Segments(); len(segs) != 1 {
		t.Fatalf("covered segments not released: %v", segs)
	}
	workload(t, m, "c")
	before := state(m)
	m2 := openDurable(t, dir, c)
	if after := state(m2); after != before {
		t.Fatalf("state differs:\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestSnapshotUnderLoad takes snapshots while writers run, then crashes.
func TestSnapshotUnderLoad(t *testing.T) {
	dir := t.TempDir()
	m, err := Open(dir, Options{Retention: time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := fmt.Sprintf("+1415%03d%04d", 200+g, i%10000)
				req := matcher.CreateRequest{Key: "k", Number: from, To: to, TTL: time.Minute}
				msg := matcher.Message{Provider: "p", From: from, To: to}
				if i%2 == 1 { // routes on two numbers, proven on the second
					req.Routes = []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelWhatsApp, To: to2}}
					msg.Channel, msg.To = matcher.ChannelWhatsApp, to2
				}
				s, _, err := m.createOnce(req)
				if err != nil {
					t.Error(err)
					return
				}
				msg.MessageID, msg.Text = s.ID, s.Code
				if i%3 == 0 {
					msg.Text = "wrong"
				}
				if _, err := m.ingestOnce(msg, matcher.IngestOptions{}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 5 {
		time.Sleep(30 * time.Millisecond)
		if err := m.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	before := state(m)
	m2, err := Open(dir, Options{Retention: time.Hour}, DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if after := state(m2); after != before {
		t.Fatalf("state differs after snapshots under load:\n%s", diffLines(before, after))
	}
}

func TestRetentionAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	s := create(t, m, alice, "482913")
	ingest(t, m, sms(alice, "482913"))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c.Add(2 * time.Hour)
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	if _, err := m2.get(s.ID); !errors.Is(err, matcher.ErrNotFound) {
		t.Fatalf("finished session kept past retention: %v", err)
	}
}

func TestOpenRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Now()}
	m := openDurable(t, dir, c)
	workload(t, m, "x")
	m.Close()
	p := filepath.Join(dir, snapshotName)
	b, _ := os.ReadFile(p)
	b[len(b)-3] ^= 0x10
	os.WriteFile(p, b, 0o600)
	if _, err := Open(dir, Options{}, DurableOptions{}); !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), p) {
		t.Fatalf("damaged snapshot: %v", err)
	}
	// A snapshot whose log segments went missing.
	dir2 := t.TempDir()
	m = openDurable(t, dir2, c)
	workload(t, m, "a")
	m.Snapshot()
	workload(t, m, "b")
	m.Close()
	segs, _ := filepath.Glob(filepath.Join(dir2, "wal", "*.wal"))
	os.WriteFile(filepath.Join(dir2, snapshotName), nil, 0o600)
	os.Remove(filepath.Join(dir2, snapshotName))
	if len(segs) > 0 {
		if _, err := Open(dir2, Options{}, DurableOptions{}); err == nil {
			t.Fatal("a log starting after LSN 1 without its snapshot was accepted")
		}
	}
}

// TestOpenChecksCoveredRecords: a log record the snapshot covers is not
// decoded, but its version byte is checked: one of an unknown version (a
// record this code cannot read, or damage within it) still fails Open.
func TestOpenChecksCoveredRecords(t *testing.T) {
	for _, bad := range [][]byte{{0x7f, 1, 2, 3}, {0}} {
		dir := t.TempDir()
		c := &clock{t: time.Now()}
		m := openDurable(t, dir, c)
		workload(t, m, "a")
		if err := m.Log().Append(bad).Wait(); err != nil {
			t.Fatal(err)
		}
		lsn := m.Log().LastLSN()
		workload(t, m, "b")
		if err := m.Close(); err != nil { // snapshots: its cuts cover every record
			t.Fatal(err)
		}
		if segs, _ := filepath.Glob(filepath.Join(dir, "wal", "*.wal")); len(segs) == 0 {
			t.Fatal("no log segment left to hold the record")
		}
		if _, err := Open(dir, Options{Now: c.Now}, DurableOptions{}); !errors.Is(err, errDecode) {
			t.Fatalf("record %x at LSN %d, covered by the snapshot: Open says %v, want errDecode", bad, lsn, err)
		}
	}
}

func TestWALFailureIsNotAcknowledged(t *testing.T) {
	dir := t.TempDir()
	m := openDurable(t, dir, &clock{t: time.Now()})
	m.Log().Close() // every append now fails
	if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: alice, To: to, TTL: time.Minute}); err == nil {
		t.Fatal("Create acknowledged without a log")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	s := &matcher.Session{ID: newID("vrf_", 3), Key: "k", API: "v1", Number: alice, Code: "Ab 12", To: to, Metadata: []byte(`{"x":1}`),
		PageToken: newID("pt_", 3), MaxAttempts: 3, CreatedAt: time.Unix(1, 5).UTC(), ExpiresAt: time.Unix(100, 0).UTC(),
		Status: matcher.Verified, Attempts: 2, VerifiedNumber: alice, FinishedAt: time.Unix(50, 0).UTC(), Provider: "tw", MessageID: "SM1", Reason: "",
		Routes:        []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelWhatsApp, To: "+14155550101"}},
		ClientCountry: "DE", Via: matcher.Route{Channel: matcher.ChannelWhatsApp, To: "+14155550101"},
		Signals: matcher.Signals{LineType: "mobile", Carrier: "T-Mobile", SenderCountry: "US", Forwarded: true, SenderSessions24h: 2}}
	plain := &matcher.Session{ID: newID("vrf_", 4), Key: "k", Number: alice, Code: "1234", To: to, PageToken: newID("pt_", 4),
		MaxAttempts: 3, Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: to}}}
	recs := []Record{
		{Op: OpCreate, At: time.Unix(1, 5).UTC(), ID: s.ID, Session: s},
		{Op: OpCreate, At: time.Unix(1, 6).UTC(), ID: plain.ID, Session: plain},
		{Op: OpVerify, At: time.Unix(2, 0).UTC(), ID: s.ID, From: alice, Provider: "tw", MessageID: "SM1",
			Via: s.Via, Signals: s.Signals},
		{Op: OpFail, At: time.Unix(2, 5).UTC(), ID: s.ID, From: alice, Provider: "tw", MessageID: "SM2", Reason: matcher.ReasonLineTypeRejected,
			Via: matcher.Route{Channel: matcher.ChannelCall, To: to}, Signals: matcher.Signals{LineType: "voip", Attestation: "A"}},
		{Op: OpUnmatched, At: time.Unix(7, 0).UTC(), ID: "evt_1", Unmatched: &matcher.UnmatchedEvent{ID: "evt_1", Key: "k", At: time.Unix(7, 0).UTC(),
			Message: matcher.Message{Provider: "meta", MessageID: "wamid.1", From: alice, To: to, Text: "hi", Channel: matcher.ChannelWhatsApp,
				LineType: "mobile", Carrier: "c", SenderCountry: "US", Attestation: "B", Forwarded: true, RejectReason: "x"}}},
		{Op: OpCancel, At: time.Unix(3, 0).UTC(), ID: s.ID, Reason: "superseded"},
		{Op: OpExpire, At: time.Unix(4, 0).UTC(), ID: s.ID},
		{Op: OpProcessed, At: time.Unix(5, 0).UTC(), Provider: "tw", MessageID: "SM1", Outcome: matcher.Outcome{Kind: matcher.Matched, SessionID: s.ID}},
		{Op: OpPart, At: time.Unix(6, 0).UTC(), Part: &Part{Message: matcher.Message{Provider: "v", MessageID: "m", From: alice, To: to, Text: "t", Parts: 2, Part: 1, PartsRef: "r"}}},
	}
	for _, r := range recs {
		got, err := decodeRecord(encodeRecord(nil, &r))
		if err != nil {
			t.Fatalf("%v: %v", r.Op, err)
		}
		if r.Op != OpCreate && r.Op != OpPart {
			if !reflect.DeepEqual(got, r) {
				t.Fatalf("%v:\n got %+v\nwant %+v", r.Op, got, r)
			}
			continue
		}
		if r.Op == OpCreate && !reflect.DeepEqual(*got.Session, *r.Session) { // routes, client country, via and signals too
			t.Fatalf("session:\n got %+v\nwant %+v", *got.Session, *r.Session)
		}
		if r.Op == OpPart && got.Part.Message != r.Part.Message {
			t.Fatalf("part: %+v", got.Part)
		}
	}
}

func FuzzDecode(f *testing.F) {
	s := &matcher.Session{ID: newID("vrf_", 1), PageToken: newID("pt_", 1), Code: "1234", To: to}
	f.Add(encodeRecord(nil, &Record{Op: OpCreate, ID: s.ID, Session: s}))
	f.Add(encodeRecord(nil, &Record{Op: OpVerify, ID: s.ID, From: alice}))
	routed := *s
	routed.Number, routed.Routes, routed.ClientCountry = alice, []matcher.Route{{Channel: "sms", To: to}, {Channel: "call", To: "+1"}}, "US"
	f.Add(encodeRecord(nil, &Record{Op: OpCreate, ID: s.ID, Session: &routed}))
	f.Add(encodeRecord(nil, &Record{Op: OpFail, ID: s.ID, From: alice, Reason: matcher.ReasonLineTypeRejected,
		Via: matcher.Route{Channel: "call", To: "+1"}, Signals: matcher.Signals{Attestation: "A", Forwarded: true, SenderSessions24h: 3}}))
	v1 := encodeRecord(nil, &Record{Op: OpExpire, ID: s.ID})
	v1[0] = 1 // a record of version 1 (the same for OpExpire)
	f.Add(v1)
	f.Add(encodeRecord(nil, &Record{Op: OpPart, Part: &Part{Message: matcher.Message{Parts: 2, Part: 1}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		again, err := decodeRecord(encodeRecord(nil, &r))
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if r.Op != again.Op || r.ID != again.ID {
			t.Fatalf("round trip changed the record")
		}
	})
}

func diffLines(before, after string) string {
	inA := map[string]bool{}
	for _, l := range strings.Split(after, "\n") {
		inA[l] = true
	}
	inB := map[string]bool{}
	for _, l := range strings.Split(before, "\n") {
		inB[l] = true
	}
	var out []string
	for l := range inB {
		if !inA[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range inA {
		if !inB[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestBackupRestore is the procedure of docs/durability.md: stop (Close writes a final
// snapshot), copy data_dir, start from the copy.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	workload(t, m, "x")
	want := state(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup")
	if err := os.CopyFS(backup, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	restored := openDurable(t, backup, c)
	defer restored.Close()
	if got := state(restored); got != want {
		t.Fatalf("restored state differs:\n%s", diffLines(want, got))
	}
}

// TestNotifiedSurvivesCrash: a delivered event stays delivered, an
// undelivered one is due again after a restart.
func TestNotifiedSurvivesCrash(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	a := create(t, m, alice, "111111")
	b := create(t, m, mallet, "222222")
	ingest(t, m, sms(alice, "111111"))
	ingest(t, m, sms(mallet, "222222"))
	evs := due(t, m)
	if len(evs) != 2 {
		t.Fatalf("due = %d events", len(evs))
	}
	ack(t, m, evs[matcher.EventID(a.ID, matcher.Verified)], false)
	m2 := openDurable(t, dir, c) // crash: no Close
	got := due(t, m2)
	if len(got) != 1 || got[matcher.EventID(b.ID, matcher.Verified)].Session == nil {
		t.Fatalf("after crash due = %+v", got)
	}
	if s, _ := m2.get(a.ID); s.Notified != matcher.Delivered {
		t.Fatalf("delivered state lost: %v", s.Notified)
	}
	ack(t, m2, got[matcher.EventID(b.ID, matcher.Verified)], true)
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c) // from the snapshot
	defer m3.Close()
	if s, _ := m3.get(b.ID); s.Notified != matcher.Dead || len(due(t, m3)) != 0 {
		t.Fatalf("dead state lost: %v", s.Notified)
	}
	// An event whose session is gone is forgotten.
	gone := matcher.Session{ID: "vrf_nope", Status: matcher.Verified}
	if err := m3.AckEvent(bg, matcher.Event{ID: matcher.EventID(gone.ID, gone.Status), Session: &gone}, false); err != nil {
		t.Fatal(err)
	}
}

func TestUnmatchedEventsDurable(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	msg := sms(mallet, "hello?")
	if o, err := m.ingestOnce(msg, matcher.IngestOptions{UnmatchedKeys: []string{"shop", "ops"}}); err != nil || o.Kind != matcher.Unmatched {
		t.Fatal(o, err)
	}
	told := due(t, m)
	for _, k := range []string{"shop", "ops"} {
		ev := told[matcher.UnmatchedEventID(msg.Provider, msg.MessageID, k)]
		if ev.Unmatched == nil || ev.Key != k || ev.Unmatched.Message.Text != "hello?" {
			t.Fatalf("told = %+v", told)
		}
	}
	shop, ops := told[matcher.UnmatchedEventID(msg.Provider, msg.MessageID, "shop")], told[matcher.UnmatchedEventID(msg.Provider, msg.MessageID, "ops")]
	// A redelivery is a duplicate: no new event.
	if o, _ := m.ingestOnce(msg, matcher.IngestOptions{UnmatchedKeys: []string{"shop", "ops"}}); !o.Duplicate || len(due(t, m)) != 2 {
		t.Fatalf("redelivery made events: %d pending", len(due(t, m)))
	}
	ack(t, m, shop, false)
	m2 := openDurable(t, dir, c) // crash
	if p := due(t, m2); len(p) != 1 || p[ops.ID].Unmatched == nil || p[ops.ID].Unmatched.Message.Text != "hello?" {
		t.Fatalf("after crash pending = %+v", p)
	}
	if err := m2.Close(); err != nil { // snapshot holds it
		t.Fatal(err)
	}
	m3 := openDurable(t, dir, c)
	defer m3.Close()
	if p := due(t, m3); len(p) != 1 || p[ops.ID].Key != "ops" {
		t.Fatalf("after snapshot pending = %+v", p)
	}
	ack(t, m3, shop, false) // an acked event that comes back is forgotten again
	if p := due(t, m3); len(p) != 1 {
		t.Fatalf("delivered event came back: %+v", p)
	}
}

// TestSnapshotSchedule backs docs/durability.md: a snapshot after SnapshotEvery
// records, or after SnapshotInterval when anything was written, not before.
func TestSnapshotSchedule(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m, err := Open(dir, Options{Now: c.Now, Retention: time.Hour}, DurableOptions{SnapshotEvery: 4, SnapshotInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	snap := filepath.Join(dir, snapshotName)
	exists := func() bool { _, err := os.Stat(snap); return err == nil }
	create(t, m, "+14155550001", "111111")
	if err := m.maybeSnapshot(); err != nil || exists() {
		t.Fatalf("snapshot after 1 record: %v %v", err, exists())
	}
	for i := range 4 {
		create(t, m, fmt.Sprintf("+1415555001%d", i), "111111")
	}
	if err := m.maybeSnapshot(); err != nil || !exists() {
		t.Fatalf("no snapshot after 5 records: %v", err)
	}
	os.Remove(snap)
	create(t, m, "+14155550020", "111111")
	if err := m.maybeSnapshot(); err != nil || exists() {
		t.Fatal("snapshot before the interval with 1 record")
	}
	c.Add(time.Hour)
	if err := m.maybeSnapshot(); err != nil || !exists() {
		t.Fatalf("no snapshot after the interval: %v", err)
	}
	os.Remove(snap)
	c.Add(2 * time.Hour) // nothing written since: no snapshot
	if err := m.maybeSnapshot(); err != nil || exists() {
		t.Fatal("snapshot although nothing changed")
	}
}

// TestOpenRestoresGCPercent: the collector, paused while a snapshot loads,
// is back at the process's setting once Open returns, and an Open that
// overlaps another's load leaves it paused until the last load ends; a
// setting made while a load runs is kept.
func TestOpenRestoresGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(137))
	gcPercent := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }

	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	workload(t, m, "x")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := openDurable(t, dir, c) // loads the snapshot Close wrote
	m2.Log().Close()
	if got := gcPercent(); got != 137 {
		t.Fatalf("GC percent after Open: %d, want 137", got)
	}

	first := pauseGC()
	second := pauseGC()
	if got := gcPercent(); got != loadGCPercent {
		t.Fatalf("GC percent while loading: %d, want %d", got, loadGCPercent)
	}
	first()
	if got := gcPercent(); got != loadGCPercent {
		t.Fatalf("GC percent with a load still running: %d, want %d", got, loadGCPercent)
	}
	second()
	if got := gcPercent(); got != 137 {
		t.Fatalf("GC percent after both loads: %d, want 137", got)
	}

	// A setting made while a load runs stands when it ends.
	resume := pauseGC()
	debug.SetGCPercent(80)
	resume()
	if got := gcPercent(); got != 80 {
		t.Fatalf("GC percent set to 80 during a load, after it: %d", got)
	}
}

// TestSnapshotLoadsWithoutGC: no collection runs while Open loads a
// snapshot (and checks the log records it covers), even with the
// collector set to run at every 1% of growth; with records to replay
// after it, collections run during Open (the collector resumes before
// the first).
func TestSnapshotLoadsWithoutGC(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	m := openDurable(t, dir, c)
	create := func(m *Store, from, n int) {
		for i := range n {
			if _, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: "+1" + strconv.Itoa(2000000000+from+i), To: to, TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
		}
	}
	create(m, 0, 5000)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	defer debug.SetGCPercent(debug.SetGCPercent(1))
	collections := func(open func() *Store) (*Store, uint32) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m := open()
		runtime.ReadMemStats(&after)
		return m, after.NumGC - before.NumGC
	}
	m2, n := collections(func() *Store { return openDurable(t, dir, c) })
	if m2.Len() != 5000 || n != 0 {
		t.Fatalf("opened %d sessions with %d collections, want 5000 with none", m2.Len(), n)
	}
	create(m2, 5000, 5000) // in the log only: no Close
	m3, n := collections(func() *Store { return openDurable(t, dir, c) })
	defer m3.Close()
	if m3.Len() != 10000 || n == 0 {
		t.Fatalf("opened %d sessions, 5000 of them replayed, with %d collections, want 10000 with some", m3.Len(), n)
	}
}
