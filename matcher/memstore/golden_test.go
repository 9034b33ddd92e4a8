package memstore_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/memstore"
)

// The golden data directories, one per version of the formats: a snapshot
// and a WAL segment written by the memory store from the script in
// writeGolden, and want.json, the state they hold. Recovering them must
// give exactly that state: the snapshot and record formats, and what
// recovery makes of them, do not change, and data an older build wrote
// still recovers. Version 1 is record version 1 in snapshot payload 2;
// version 2 (record version 2, snapshot payload 3) adds sessions with
// routes on two numbers, calls, signals, a rejection by policy and sender
// counts to the script.
var goldenDirs = map[int]string{1: "testdata/golden-v1", 2: "testdata/golden-v2"}

// goldenLatest is the version this build writes: -golden.update rewrites
// only its directory; the older ones are kept as they were written.
const goldenLatest = 2

var updateGolden = flag.Bool("golden.update", false, "rewrite "+goldenDirs[goldenLatest]+" (only when its format changes on purpose)")

// goldenStart is the clock of the script; it ends at goldenEnd.
var (
	goldenStart = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	goldenEnd   = goldenStart.Add(10 * time.Minute)
)

// openGolden opens a durable memory store in dir on a fixed clock.
func openGolden(t *testing.T, dir string, now func() time.Time) (matcher.Store, func() error) {
	t.Helper()
	m, err := memstore.Open(dir, memstore.Options{Now: now, Retention: 24 * time.Hour}, memstore.DurableOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, m.Close
}

// goldenState is what a recovered store holds, as its API shows it.
type goldenState struct {
	IDs       map[string]string          // script name -> session id
	Sessions  map[string]matcher.Session // by script name
	ByToken   map[string]string          // script name -> id found by its page token
	Idem      map[string]string          // "key/idem" -> session id
	Events    []matcher.Event            // claimable, oldest first
	Pending   map[string]int
	Redeliver map[string]matcher.Outcome // provider message id -> outcome of a redelivery
	Nonces    map[string]bool            // nonce -> fresh when spent again
	LastPart  matcher.Outcome            // the missing part of the pending multipart message
	// Version 2: the sender counts ("key/sender" -> SenderSessions24h at
	// goldenEnd) and the pending sessions of a sender with routes on two
	// numbers (PendingFor on the second, then on both).
	Senders   map[string]int `json:",omitempty"`
	PendingOn [][]string     `json:",omitempty"`
}

const (
	gTo    = "+15550000001"
	gAlice = "+15551110001"
	gBob   = "+15551110002"
	gCarol = "+15551110003"
	gDave  = "+15551110004"
	// Version 2.
	gTo2   = "+15550000002"
	gFrank = "+15551110005"
	gGrace = "+15551110006"
	gHeidi = "+15551110007"
	gIvan  = "+15551110008"
)

// Routes of the version 2 script.
var (
	gSMS  = matcher.Route{Channel: matcher.ChannelSMS, To: gTo}
	gWA2  = matcher.Route{Channel: matcher.ChannelWhatsApp, To: gTo2}
	gCall = matcher.Route{Channel: matcher.ChannelCall, To: gTo2}
)

// writeGolden runs the script on a fresh store in dir: a first half that
// the snapshot holds (the store is closed, which snapshots), a second half
// only in the log, copied to out before the store closes (closing
// snapshots). It returns the session ids by script name. version selects
// the script (see goldenDirs).
func writeGolden(t *testing.T, dir, out string, version int) map[string]string {
	t.Helper()
	ctx := context.Background()
	now := goldenStart
	clock := func() time.Time { return now }
	st, closeStore := openGolden(t, dir, clock)
	ids := map[string]string{}
	create := func(name string, req matcher.CreateRequest) matcher.Session {
		t.Helper()
		now = now.Add(time.Second)
		if req.TTL == 0 {
			req.TTL = time.Hour
		}
		s, _, err := st.Create(ctx, req)
		if err != nil {
			t.Fatal(name, err)
		}
		ids[name] = s.ID
		return s
	}
	ingest := func(msg matcher.Message, keys ...string) matcher.Outcome {
		t.Helper()
		now = now.Add(time.Second)
		msg.Provider = "twilio"
		if msg.To == "" {
			msg.To = gTo
		}
		o, err := st.Ingest(ctx, msg, matcher.IngestOptions{UnmatchedKeys: keys})
		if err != nil {
			t.Fatal(msg.MessageID, err)
		}
		return o
	}
	spend := func(nonce string) {
		t.Helper()
		now = now.Add(time.Second)
		if fresh, err := st.SpendNonce(ctx, "plivo", nonce); err != nil || !fresh {
			t.Fatal(nonce, fresh, err)
		}
	}

	// Snapshot half.
	create("alice", matcher.CreateRequest{Key: "k1", API: "v1", Number: gAlice, Code: "482913", To: gTo, Country: "US",
		Language: "en", Callback: "https://app.example/cb", Redirect: "https://app.example/done",
		Metadata: []byte(`{"user":7}`), IdemKey: "idem-1", ReqHash: "h1", MaxAttempts: 5})
	capture := create("capture", matcher.CreateRequest{Key: "k1", API: "contiguity", IDPrefix: "r_otp_", To: gTo})
	ingest(matcher.Message{MessageID: "m-attempt", From: gAlice, Text: "111111"})
	create("bob", matcher.CreateRequest{Key: "k2", Number: gBob, Code: "555-555", To: gTo})
	now = now.Add(time.Second)
	if _, err := st.Cancel(ctx, ids["bob"]); err != nil {
		t.Fatal(err)
	}
	create("carol-old", matcher.CreateRequest{Key: "k1", Number: gCarol, Code: "777777", To: gTo})
	create("carol-new", matcher.CreateRequest{Key: "k1", Number: gCarol, Code: "787878", To: gTo})
	create("carol-k2", matcher.CreateRequest{Key: "k2", Number: gCarol, Code: "999999", To: gTo})
	ingest(matcher.Message{MessageID: "m-r1-1", From: gDave, Text: "Code ", Parts: 2, Part: 1, PartsRef: "r1"})
	spend("n1")
	ingest(matcher.Message{MessageID: "m-unmatched-1", From: gDave, Text: "hello"}, "k1", "k2")
	var capture2 matcher.Session
	if version >= 2 {
		create("frank", matcher.CreateRequest{Key: "k1", Number: gFrank, Code: "135790", To: gTo, Routes: []matcher.Route{gSMS, gWA2}, ClientCountry: "DE"})
		create("grace", matcher.CreateRequest{Key: "k1", Number: gGrace, Code: "246802", To: gTo, Routes: []matcher.Route{gSMS, gCall}})
		if o := ingest(matcher.Message{MessageID: "CA-grace", From: gGrace, To: gTo2, Channel: matcher.ChannelCall, Attestation: "A", LineType: "mobile"}); o.Kind != matcher.Matched {
			t.Fatalf("call: %+v", o)
		}
		capture2 = create("capture2", matcher.CreateRequest{Key: "k2", To: gTo, Routes: []matcher.Route{gSMS, gWA2}})
	}
	if err := closeStore(); err != nil {
		t.Fatal(err)
	}

	// Log half.
	st, closeStore = openGolden(t, dir, clock)
	defer func() {
		if err := closeStore(); err != nil {
			t.Error(err)
		}
	}()
	ingest(matcher.Message{MessageID: "m-verify", From: gAlice, Text: "your code is 482 913"})
	ingest(matcher.Message{MessageID: "m-r2-1", From: gBob, Text: "hi ", Parts: 2, Part: 1, PartsRef: "r2"})
	if o := ingest(matcher.Message{MessageID: "m-r1-2", From: gDave, Text: capture.Code, Parts: 2, Part: 2, PartsRef: "r1"}); o.Kind != matcher.Matched {
		t.Fatalf("multipart capture: %+v", o)
	}
	create("eve", matcher.CreateRequest{Key: "k2", Number: gDave, Code: "246810", To: gTo, MaxAttempts: 1})
	ingest(matcher.Message{MessageID: "m-fail", From: gDave, Text: "000000"})
	spend("n2")
	ingest(matcher.Message{MessageID: "m-unmatched-2", From: gBob, Text: "STOP"}, "k1")
	if version >= 2 {
		want := func(o matcher.Outcome, k matcher.OutcomeKind) {
			t.Helper()
			if o.Kind != k {
				t.Fatalf("outcome %+v, want %v", o, k)
			}
		}
		want(ingest(matcher.Message{MessageID: "wamid-frank", From: gFrank, To: gTo2, Channel: matcher.ChannelWhatsApp, Text: "135790",
			LineType: "mobile", Carrier: "Vodafone", SenderCountry: "DE", Forwarded: true}), matcher.Matched)
		want(ingest(matcher.Message{MessageID: "wamid-capture2", From: gHeidi, To: gTo2, Channel: matcher.ChannelWhatsApp, Text: capture2.Code}), matcher.Matched)
		create("grace2", matcher.CreateRequest{Key: "k1", Number: gGrace, Code: "112233", To: gTo})
		want(ingest(matcher.Message{MessageID: "m-grace2", From: gGrace, Text: "112233", LineType: "mobile"}), matcher.Matched)
		create("heidi", matcher.CreateRequest{Key: "k2", Number: gHeidi, Code: "445566", To: gTo})
		want(ingest(matcher.Message{MessageID: "m-heidi", From: gHeidi, Text: "445566", LineType: "voip", Carrier: "Bandwidth",
			RejectReason: matcher.ReasonLineTypeRejected}), matcher.Exhausted)
		create("ivan", matcher.CreateRequest{Key: "k1", Number: gIvan, Code: "778899", To: gTo, Routes: []matcher.Route{gSMS, gWA2}})
	}
	now = now.Add(time.Second)
	evs, err := st.ClaimEvents(ctx, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		switch {
		case ev.Unmatched != nil && ev.Unmatched.Message.MessageID == "m-unmatched-1" && ev.Key == "k1":
		case ev.Session != nil && ev.Session.ID == ids["bob"]:
		case ev.Session != nil && ev.Session.ID == ids["carol-old"]:
			if err := st.AckEvent(ctx, ev, true); err != nil { // dead
				t.Fatal(err)
			}
			continue
		default:
			continue
		}
		if err := st.AckEvent(ctx, ev, false); err != nil {
			t.Fatal(err)
		}
	}
	now = goldenEnd
	copyDir(t, dir, out)
	return ids
}

// readGolden reads the state of a store recovered from dir, written by the
// script of version.
func readGolden(t *testing.T, dir string, ids map[string]string, version int) goldenState {
	t.Helper()
	ctx := context.Background()
	st, closeStore := openGolden(t, dir, func() time.Time { return goldenEnd })
	defer func() {
		if err := closeStore(); err != nil {
			t.Error(err)
		}
	}()
	g := goldenState{IDs: ids, Sessions: map[string]matcher.Session{}, ByToken: map[string]string{}, Idem: map[string]string{},
		Redeliver: map[string]matcher.Outcome{}, Nonces: map[string]bool{}}
	for name, id := range ids {
		s, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(name, err)
		}
		g.Sessions[name] = s
		b, err := st.ByPageToken(ctx, s.PageToken)
		if err != nil {
			t.Fatal(name, err)
		}
		g.ByToken[name] = b.ID
	}
	for _, k := range [][2]string{{"k1", "idem-1"}, {"k2", "idem-1"}} {
		if s, ok, err := st.LookupIdempotent(ctx, k[0], k[1]); err != nil {
			t.Fatal(err)
		} else if ok {
			g.Idem[k[0]+"/"+k[1]] = s.ID
		}
	}
	evs, err := st.ClaimEvents(ctx, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	g.Events = evs
	if g.Pending, err = st.PendingByNumber(ctx); err != nil {
		t.Fatal(err)
	}
	redeliver := []string{"m-attempt", "m-r1-1", "m-unmatched-1", "m-verify", "m-r2-1", "m-r1-2", "m-fail", "m-unmatched-2"}
	if version >= 2 {
		redeliver = append(redeliver, "CA-grace", "wamid-frank", "wamid-capture2", "m-grace2", "m-heidi")
		g.Senders = map[string]int{}
		for _, ks := range [][2]string{{"k1", gGrace}, {"k1", gFrank}, {"k2", gHeidi}, {"k1", gHeidi}, {"k1", gAlice}} {
			g.Senders[ks[0]+"/"+ks[1]] = st.(*memstore.Store).SenderSessions24h(ks[0], ks[1], goldenEnd)
		}
		for _, tos := range [][]string{{gTo2}, {gTo, gTo2}} {
			p, err := st.PendingFor(ctx, gIvan, tos)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p {
				got = append(got, s.ID)
			}
			g.PendingOn = append(g.PendingOn, got)
		}
	}
	for _, id := range redeliver {
		o, err := st.Ingest(ctx, matcher.Message{Provider: "twilio", MessageID: id, From: gBob, To: gTo, Text: "x"}, matcher.IngestOptions{})
		if err != nil {
			t.Fatal(id, err)
		}
		g.Redeliver[id] = o
	}
	for _, n := range []string{"n1", "n2"} {
		fresh, err := st.SpendNonce(ctx, "plivo", n)
		if err != nil {
			t.Fatal(n, err)
		}
		g.Nonces[n] = fresh
	}
	g.LastPart, err = st.Ingest(ctx, matcher.Message{Provider: "twilio", MessageID: "m-r2-2", From: gBob, To: gTo, Text: "there",
		Parts: 2, Part: 2, PartsRef: "r2"}, matcher.IngestOptions{NoCapture: true})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// copyDir copies the regular files of a directory tree.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGoldenRecovery recovers each version's golden snapshot and log
// segment and checks the exact state they hold: sessions of every status
// and reason, idempotency keys, page tokens, undelivered events (acked ones
// gone), processed messages and spent nonces, and a pending multipart
// message; from version 2 on also routes, signals and sender counts.
func TestGoldenRecovery(t *testing.T) {
	for version, dir := range goldenDirs {
		t.Run(filepath.Base(dir), func(t *testing.T) { testGoldenRecovery(t, version, dir) })
	}
}

func testGoldenRecovery(t *testing.T, version int, goldenDir string) {
	if *updateGolden && version == goldenLatest {
		data, read := t.TempDir(), t.TempDir()
		ids := writeGolden(t, t.TempDir(), data, version)
		copyDir(t, data, read) // reading writes a snapshot
		g := readGolden(t, read, ids, version)
		if err := os.RemoveAll(goldenDir); err != nil {
			t.Fatal(err)
		}
		copyDir(t, data, filepath.Join(goldenDir, "data"))
		b, err := json.MarshalIndent(g, "", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(goldenDir, "want.json"), append(b, '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wantJSON, err := os.ReadFile(filepath.Join(goldenDir, "want.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct{ IDs map[string]string } // the rest is compared as text
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(goldenDir, "data", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no golden log segment: %v %v", segs, err)
	}
	if _, err := os.Stat(filepath.Join(goldenDir, "data", "snapshot")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyDir(t, filepath.Join(goldenDir, "data"), dir)
	got := readGolden(t, dir, want.IDs, version)
	gotJSON, err := json.MarshalIndent(got, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if string(gotJSON)+"\n" != string(wantJSON) {
		t.Errorf("recovered state differs from %s/want.json:\n%s", goldenDir, lineDiff(string(wantJSON), string(gotJSON)+"\n"))
	}
	// The script covered what it claims to.
	statuses := map[string]bool{}
	for _, s := range got.Sessions {
		statuses[s.Status.String()+"/"+s.Reason] = true
	}
	wantStatuses := []string{"pending/", "verified/", "failed/max_attempts", "cancelled/cancelled_by_api", "cancelled/superseded"}
	if version >= 2 {
		wantStatuses = append(wantStatuses, "failed/line_type_rejected")
		vias := map[string]bool{}
		for _, s := range got.Sessions {
			vias[s.Via.Channel] = vias[s.Via.Channel] || s.Status == matcher.Verified && len(s.Routes) == 2
		}
		if !vias[matcher.ChannelCall] || !vias[matcher.ChannelWhatsApp] || got.Senders["k1/"+gGrace] != 2 || len(got.PendingOn) != 2 || len(got.PendingOn[0]) != 1 {
			t.Errorf("golden data holds no session with two routes verified by call and by WhatsApp, or no sender count of 2, or no pending session on its second number: %v %v %v", vias, got.Senders, got.PendingOn)
		}
	}
	for _, st := range wantStatuses {
		if !statuses[st] {
			t.Errorf("golden data holds no %s session: %v", st, statuses)
		}
	}
}

// lineDiff lists the lines of want and got that differ, in order.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, "- "+a, "+ "+b)
		}
	}
	return strings.Join(slices.Clip(out), "\n")
}

// TestGoldenSnapshotRoundTrip: the state recovered from each version's
// golden data, written by this build's snapshot (closing snapshots) and
// read back, is the same state.
func TestGoldenSnapshotRoundTrip(t *testing.T) {
	for version, goldenDir := range goldenDirs {
		t.Run(filepath.Base(goldenDir), func(t *testing.T) {
			wantJSON, err := os.ReadFile(filepath.Join(goldenDir, "want.json"))
			if err != nil {
				t.Fatal(err)
			}
			var want struct{ IDs map[string]string }
			if err := json.Unmarshal(wantJSON, &want); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			copyDir(t, filepath.Join(goldenDir, "data"), dir)
			first := readGolden(t, dir, want.IDs, version)  // closes: a snapshot of this build
			second := readGolden(t, dir, want.IDs, version) // from that snapshot
			if !second.LastPart.Duplicate || second.LastPart.Kind != first.LastPart.Kind {
				t.Errorf("the part completed before the snapshot: %+v, then %+v", first.LastPart, second.LastPart)
			}
			first.LastPart, second.LastPart = matcher.Outcome{}, matcher.Outcome{}
			a, err := json.MarshalIndent(first, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.MarshalIndent(second, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			if string(a) != string(b) {
				t.Errorf("state differs after a snapshot of this build:\n%s", lineDiff(string(a), string(b)))
			}
		})
	}
}
