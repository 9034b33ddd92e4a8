package redisstore_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// tagKey is the key name of to's tag (P:{T}:name) under the default prefix.
func tagKey(to, name string) string {
	return strings.TrimSuffix(redisstore.SessionsKey(to), ":s") + ":" + name
}

// TestCorruptSessionRecord: a stored session that is not a session record
// (JSON null, an empty object, a string, garbage) reads as an error, never
// as a zero session.
func TestCorruptSessionRecord(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, options(srv.URL(), nil))
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range []string{"null", "{}", `"x"`, "{", `{"id":"vrf_other"}`} {
		if err := srv.Client().HSet(ctx, redisstore.SessionsKey(storetest.To), sess.ID, rec).Err(); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, sess.ID)
		if err == nil || !errors.Is(err, matcher.ErrUnavailable) {
			t.Errorf("Get with record %s = %+v, %v; want an unavailable error", rec, got, err)
		}
		if got.ID != "" {
			t.Errorf("Get with record %s returned a session %q beside its error", rec, got.ID)
		}
		if _, err := s.PendingFor(ctx, storetest.Alice, []string{storetest.To}); err == nil {
			t.Errorf("PendingFor with record %s: no error", rec)
		}
	}
}

// TestCorruptDedupeRecord: a dedupe record that is not an outcome makes
// Ingest fail instead of reporting a duplicate with a zero outcome.
func TestCorruptDedupeRecord(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	s := open(t, options(srv.URL(), nil))
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "482913"}
	for _, rec := range []string{"null", "{}", "[1]", "{"} {
		if err := srv.Client().Set(ctx, tagKey(storetest.To, "d:tw\x00SM1"), rec, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err == nil {
			t.Errorf("Ingest with dedupe record %s = %+v, want an error", rec, o)
		}
	}
}

// TestCorruptEventRecord: an undelivered message.unmatched event whose
// record is not an event is not delivered, and says so in the log.
func TestCorruptEventRecord(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	var logs lockedBuffer
	o := options(srv.URL(), nil)
	o.Numbers = []string{storetest.To}
	o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	s := open(t, o)
	rc := srv.Client()
	if err := rc.HSet(ctx, tagKey(storetest.To, "e"), "u:evt_bad", "{").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.ZAdd(ctx, tagKey(storetest.To, "ev"), redis.Z{Score: 0, Member: "u:evt_bad"}).Err(); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ClaimEvents(ctx, time.Minute, 10)
	if err != nil || len(evs) != 0 {
		t.Fatalf("ClaimEvents = %v, %v; want none", evs, err)
	}
	found := false
	for _, l := range logs.lines(t) {
		if strings.Contains(l["msg"].(string), "undecodable") && l["member"] == "u:evt_bad" {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line names the undecodable event; logs: %v", logs.lines(t))
	}
}
