package redisstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
	textrules "github.com/mogate/mogate/matcher/text"
)

// commandCalls reads INFO commandstats: calls per command, those run
// inside functions included.
func commandCalls(t *testing.T, rc *redis.Client) map[string]int {
	t.Helper()
	info, err := rc.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for line := range strings.SplitSeq(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for kv := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.Atoi(v)
			}
		}
	}
	return out
}

// TestCreateStoresRecordAsSent: create stores the session record the
// store encoded, as sent (Go's field order, "id" first), never decoded and
// encoded again in Lua; an expected-sender session gets its creation
// counter appended, a capture session none. What Create returns is what
// Get reads back.
func TestCreateStoresRecordAsSent(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	for _, tc := range []struct {
		name string
		req  matcher.CreateRequest
		seq  bool
	}{
		{"expected sender", matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute, Metadata: []byte(`{"a":1}`)}, true},
		{"capture", matcher.CreateRequest{Key: "k", To: storetest.To, TTL: time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess, replayed, err := s.Create(ctx, tc.req)
			if err != nil || replayed {
				t.Fatalf("Create = %v, %v", replayed, err)
			}
			rec, err := rc.HGet(ctx, redisstore.SessionsKey(storetest.To), sess.ID).Result()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(rec, `{"id":"`+sess.ID+`","key":"k",`) {
				t.Errorf("stored record %s is not the one sent (re-encoded in Lua?)", rec)
			}
			var w struct {
				Seq *int64 `json:"seq"`
			}
			if err := json.Unmarshal([]byte(rec), &w); err != nil {
				t.Fatalf("stored record %s: %v", rec, err)
			}
			if got := w.Seq != nil && *w.Seq > 0; got != tc.seq {
				t.Errorf("stored record %s: has seq %v, want %v", rec, got, tc.seq)
			}
			got, err := s.Get(ctx, sess.ID)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := mustJSON(t, got), mustJSON(t, sess); a != b {
				t.Errorf("Get = %s\nCreate returned %s", a, b)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIngestReadsLinksOnce: a message reads the links of its sender and
// of all its capture candidates in one HMGET, then its session: two
// reads, however many candidates the text holds.
func TestIngestReadsLinksOnce(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To,
		Text: "code " + sess.Code} // offers "code<code>" and "<code>" to capture sessions
	o, err := s.Ingest(ctx, msg, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Matched {
		t.Fatalf("Ingest = %+v, %v", o, err)
	}
	c := commandCalls(t, rc)
	if c["hget"]+c["hmget"] != 2 || c["hmget"] != 1 {
		t.Errorf("ingest read the hashes with %d HGET and %d HMGET, want 1 HMGET (links) and 1 HGET (the session)", c["hget"], c["hmget"])
	}
}

// TestRecordsOfEarlierBuildsStillMatch: a record as earlier builds stored
// it (encoded again by Lua: another field order, seq inside) is read,
// verified and dropped from the pair index like one of this build.
func TestRecordsOfEarlierBuildsStillMatch(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	key := redisstore.SessionsKey(storetest.To)
	const reencode = `local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(cjson.decode(v)))
return redis.call('HGET', KEYS[1], ARGV[1])`
	old, err := rc.Eval(ctx, reencode, []string{key}, sess.ID).Text()
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(old, `{"id":`) || !strings.Contains(old, `"seq":1`) {
		t.Fatalf("not a record of the earlier layout: %s", old)
	}
	o, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: sess.Code}, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Matched || o.SessionID != sess.ID {
		t.Fatalf("Ingest = %+v, %v", o, err)
	}
	got, err := s.Get(ctx, sess.ID)
	if err != nil || got.Status != matcher.Verified {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	pairs := strings.TrimSuffix(key, ":s") + ":pairs"
	if n, err := rc.ZCard(ctx, pairs).Result(); err != nil || n != 0 {
		t.Errorf("%s holds %d members after the verification (%v), want none", pairs, n, err)
	}
}

// argsOf records the arguments of the library calls a client sends.
type argsOf struct {
	calls
	fn   string
	seen [][]any
}

func (a *argsOf) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 1 && strings.HasSuffix(fmt.Sprint(args[1]), "_"+a.fn) {
			a.seen = append(a.seen, args)
		}
		return next(ctx, cmd)
	}
}

// TestIngestArgumentsPlain: a message reaches the ingest function as
// plain values, none of them a JSON document for Lua to decode, and the
// function reads them right: the unmatched events it records are the
// ones passed, and the outcome is the match.
func TestIngestArgumentsPlain(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := &argsOf{fn: "ingest"}
	s.Client().AddHook(h)
	for i, text := range []string{"no code here", "code " + sess.Code} {
		o, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", i), From: storetest.Alice, To: storetest.To,
			Text: text, LineType: "mobile", Forwarded: true}, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
		want := []matcher.OutcomeKind{matcher.Attempted, matcher.Matched}[i]
		if err != nil || o.Kind != want {
			t.Fatalf("Ingest(%q) = %+v, %v; want %v", text, o, err, want)
		}
	}
	if len(h.seen) != 2 {
		t.Fatalf("%d ingest calls, want 2", len(h.seen))
	}
	for _, args := range h.seen {
		for i, v := range args {
			// The one JSON document passed is an unmatched event's, after
			// its member ("u:<event id>"): stored as it is, never decoded.
			str, ok := v.(string)
			if ok && strings.HasPrefix(str, "{") && json.Valid([]byte(str)) && !strings.HasPrefix(fmt.Sprint(args[i-1]), "u:") {
				t.Errorf("ingest argument %d is a JSON document: %s", i, str)
			}
		}
	}
	got, err := s.Get(ctx, sess.ID)
	if err != nil || got.Status != matcher.Verified || got.Signals.LineType != "mobile" || !got.Signals.Forwarded {
		t.Fatalf("Get = %+v, %v", got, err)
	}
}

// TestPoolSize: a client keeps 64 connections when redis_url names no
// pool_size (go-redis's default, 10 per CPU, made 64 concurrent calls
// queue for 20 connections); pool_size in the URL wins.
func TestPoolSize(t *testing.T) {
	srv := redistest.Start(t)
	for url, want := range map[string]int{srv.URL(): 64, srv.URL() + "?pool_size=7": 7} {
		s := open(t, options(url, time.Now))
		if got := s.Client().(*redis.Client).Options().PoolSize; got != want {
			t.Errorf("%s: pool size %d, want %d", url, got, want)
		}
	}
}

// FuzzIngestArguments: whatever a message's text (any number of chunks,
// candidates and groups, chunks that read as numbers or flags) and its
// signals, ingest reads its plain arguments in the order they are sent:
// the call succeeds, and a text that ends with the session's code as a
// token, within the scanned text.MaxScanBytes, verifies it.
func FuzzIngestArguments(f *testing.F) {
	for _, seed := range []struct{ text, lineType string }{
		{"", ""}, {"1", "1"}, {"0 1 2 3 4 5 6 7 8 9 10 11 12", "mobile"}, {"code: 1 - 2 . 3", ""},
		{`{"k":1}`, "{}"}, {"u:evt_1 \x00 nul", "landline"}, {strings.Repeat("ab-cd ", 600), ""},
	} {
		f.Add(seed.text, seed.lineType, false)
		f.Add(seed.text, seed.lineType, true)
	}
	srv := redistest.Start(f)
	s, err := openStore(options(srv.URL(), time.Now))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	ctx := context.Background()
	var n int
	f.Fuzz(func(t *testing.T, text, lineType string, withCode bool) {
		n++
		sender := fmt.Sprintf("+1415556%04d", n%10000)
		sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: sender, To: storetest.To, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if withCode {
			text = text[:min(len(text), textrules.MaxScanBytes-len(sess.Code)-1)] + "\n" + sess.Code
		}
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", n), From: sender, To: storetest.To, Text: text, LineType: lineType}
		o, err := s.Ingest(ctx, msg, matcher.IngestOptions{UnmatchedKeys: []string{"k"}})
		if err != nil {
			t.Fatalf("Ingest(%q) = %v", text, err)
		}
		if withCode && (o.Kind != matcher.Matched || o.SessionID != sess.ID) {
			t.Fatalf("Ingest(%q) = %+v, want %s matched", text, o, sess.ID)
		}
	})
}

// createVerify creates an expected-sender session for from on
// storetest.To and verifies it with its code.
func createVerify(t testing.TB, s *redisstore.Store, from string) {
	ctx := context.Background()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: from, To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	msg := matcher.Message{Provider: "tw", MessageID: "SM" + sess.ID, From: from, To: storetest.To, Text: "Code " + sess.Code}
	if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched {
		t.Fatalf("Ingest = %+v, %v", o, err)
	}
}

// TestPairCommands: a session created and verified by its sender costs
// Redis 24 commands inside the two function calls: create stores the
// record with one HSETNX (no HGET before it, no HSET after), and the
// verification reads the sender's 24 h count once and trims nothing when
// the read saw nothing older (no ZREMRANGEBYSCORE). The build before took
// 26.
func TestPairCommands(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	createVerify(t, s, storetest.Alice) // the tag registered, the library warm
	if err := rc.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	createVerify(t, s, storetest.Mallet)
	c := commandCalls(t, rc)
	inside := 0
	for name, n := range c {
		if name != "fcall" && name != "info" && name != "config|resetstat" {
			inside += n
		}
	}
	if c["fcall"] != 2 || inside != 24 || c["hsetnx"] != 1 || c["hget"] != 2 || c["zremrangebyscore"] != 0 {
		t.Errorf("a create and its verification: %d calls running %d commands, want 2 and 24 (1 HSETNX, 2 HGET, no ZREMRANGEBYSCORE): %v",
			c["fcall"], inside, c)
	}
}

// TestSenderCountTrimmedWhenStale: a verification trims the sender's
// verified sessions older than 24 h once its read saw one, so the count
// stays bounded without a trim per verification.
func TestSenderCountTrimmedWhenStale(t *testing.T) {
	srv := redistest.Start(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := open(t, fakeOptions(srv.URL(), func() time.Time { return now }))
	ctx := context.Background()
	rc := srv.Client()
	sum := sha256.Sum256([]byte(storetest.Alice))
	vs := redisstore.DefaultPrefix + ":vs:{" + hex.EncodeToString(sum[:16]) + "}"
	count := func() int64 {
		t.Helper()
		n, err := rc.ZCard(ctx, vs).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	createVerify(t, s, storetest.Alice)
	now = now.Add(time.Hour)
	createVerify(t, s, storetest.Alice)
	if n := count(); n != 2 {
		t.Fatalf("%s holds %d sessions after two verifications an hour apart, want 2", vs, n)
	}
	now = now.Add(23*time.Hour + time.Minute) // the first is older than 24 h now
	createVerify(t, s, storetest.Alice)
	if n := count(); n != 2 {
		t.Fatalf("%s holds %d sessions after a verification a day later, want 2 (the oldest trimmed)", vs, n)
	}
}

// TestCreateCodeInUseStoresNothing: a capture session refused for its code
// leaves no record behind, although create stores the record first.
func TestCreateCodeInUseStoresNothing(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	held, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	name, _ := redisstore.Library("")
	var keys []string
	for _, k := range []string{"s", "tok", "pairs", "codes", "exp", "done", "ev", "e", "pend", "seq", "links", "linkexp"} {
		keys = append(keys, tagKey(storetest.To, k))
	}
	id := held.ID[:len(held.ID)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(held.ID, "a")]
	now := time.Now().UnixMilli()
	r, err := rc.FCall(ctx, name+"_create", keys, `{"id":"`+id+`"}`, now, id, "k", "", held.Code, "pt_x", now+60000, storetest.To).StringSlice()
	if err != nil || len(r) == 0 || r[0] != "code_in_use" {
		t.Fatalf("create with the code in use = %q, %v", r, err)
	}
	if n, err := rc.HExists(ctx, redisstore.SessionsKey(storetest.To), id).Result(); err != nil || n {
		t.Errorf("a session refused for its code left its record (%v)", err)
	}
}

// TestPairAllocs: a create and its verification allocate at most 135
// times in the store's process (the build before: ~190): the calls take
// their tag's keys cached and boxed once per tag, and a generated code
// costs no big.Int per digit. go-redis's own allocations (the reply, the
// deadline, the wakeup received) are most of what is left.
func TestPairAllocs(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	n := 0
	pair := func() {
		n++
		createVerify(t, s, fmt.Sprintf("+1415555%04d", n))
	}
	pair() // the tag registered, the library warm
	if a := testing.AllocsPerRun(200, pair); a > 135 {
		t.Errorf("a create and its verification allocate %.0f times, want at most 135", a)
	} else {
		t.Logf("%.0f allocations per create and verification", a)
	}
}

// TestSenderCountReadOnlyToVerify: a message that verifies no session (a
// wrong code) does not read its sender's 24 h count, which only a
// verification records; one that verifies reads it once.
func TestSenderCountReadOnlyToVerify(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), time.Now))
	ctx := context.Background()
	rc := srv.Client()
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		text  string
		kind  matcher.OutcomeKind
		reads int
	}{{"no code here", matcher.Attempted, 0}, {"code " + sess.Code, matcher.Matched, 1}} {
		if err := rc.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		msg := matcher.Message{Provider: "tw", MessageID: fmt.Sprint("SM", i), From: storetest.Alice, To: storetest.To, Text: tc.text}
		if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != tc.kind {
			t.Fatalf("Ingest(%q) = %+v, %v; want %v", tc.text, o, err, tc.kind)
		}
		if n := commandCalls(t, rc)["zrangebyscore"]; n != tc.reads {
			t.Errorf("Ingest(%q) read the sender's count %d times, want %d", tc.text, n, tc.reads)
		}
	}
}
