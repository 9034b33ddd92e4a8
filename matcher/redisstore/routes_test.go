package redisstore_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestRecordWithoutRoutes: a session record written before routes existed
// (no rt, cc, via, sig) reads as the one route {sms, to}, verifies by SMS,
// and leaves every index when it does.
func TestRecordWithoutRoutes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	c := newClock()
	s := open(t, fakeOptions(srv.URL(), c.Now))
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the record as an older build wrote it.
	j, err := rc.HGet(ctx, redisstore.SessionsKey(storetest.To), sess.ID).Result()
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(j), &rec); err != nil {
		t.Fatal(err)
	}
	if rec["rt"] == nil {
		t.Fatalf("a new record has no routes: %s", j)
	}
	delete(rec, "rt")
	delete(rec, "cc")
	old, _ := json.Marshal(rec)
	if err := rc.HSet(ctx, redisstore.SessionsKey(storetest.To), sess.ID, old).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, sess.ID)
	if err != nil || !slices.Equal(got.Routes, []matcher.Route{{Channel: matcher.ChannelSMS, To: storetest.To}}) {
		t.Fatalf("old record reads as %+v, %v", got.Routes, err)
	}
	if p, err := s.PendingFor(ctx, storetest.Alice, []string{storetest.To}); err != nil || len(p) != 1 {
		t.Fatalf("PendingFor = %+v, %v", p, err)
	}
	o, err := s.Ingest(ctx, matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "482913"}, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Matched || o.SessionID != sess.ID {
		t.Fatalf("Ingest = %+v, %v", o, err)
	}
	got, err = s.Get(ctx, sess.ID)
	if err != nil || got.Status != matcher.Verified || got.Via != (matcher.Route{Channel: matcher.ChannelSMS, To: storetest.To}) {
		t.Fatalf("verified old record = %+v, %v", got, err)
	}
	if n, err := rc.ZCard(ctx, tagKey(storetest.To, "pairs")).Result(); err != nil || n != 0 {
		t.Fatalf("pairs left: %d, %v", n, err)
	}
	if n, err := rc.HLen(ctx, tagKey(storetest.To, "pend")).Result(); err != nil || n != 0 {
		t.Fatalf("pending counts left: %d, %v", n, err)
	}
}

// TestLinksSwept: the links of a session's other route number go once the
// session has expired, and a message on that number then takes the one
// call of an unlinked number.
func TestLinksSwept(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	c := newClock()
	s := open(t, fakeOptions(srv.URL(), c.Now))
	wa := matcher.Route{Channel: matcher.ChannelWhatsApp, To: storetest.To2}
	req := matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute,
		Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: storetest.To}, wa}}
	if _, _, err := s.Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	capture := req
	capture.Number, capture.Code = "", ""
	if _, _, err := s.Create(ctx, capture); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.HLen(ctx, tagKey(storetest.To2, "links")).Result(); err != nil || n != 2 {
		t.Fatalf("links on the second number: %d, %v; want 2 (sender, code)", n, err)
	}
	if n, err := rc.HLen(ctx, tagKey(storetest.To, "links")).Result(); err != nil || n != 0 {
		t.Fatalf("links on the home number: %d, %v; want none", n, err)
	}
	c.Add(time.Minute)
	if err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.HLen(ctx, tagKey(storetest.To2, "links")).Result(); err != nil || n != 0 {
		t.Fatalf("links after expiry: %d, %v", n, err)
	}
	if n, err := rc.ZCard(ctx, tagKey(storetest.To2, "linkexp")).Result(); err != nil || n != 0 {
		t.Fatalf("link expiries after expiry: %d, %v", n, err)
	}
}

// TestLinkedRedelivery: a message on a linked number records its outcome
// in every tag it changed, so a redelivery, even one whose first delivery
// stopped before the number's own record, changes nothing again.
func TestLinkedRedelivery(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	c := newClock()
	s := open(t, fakeOptions(srv.URL(), c.Now))
	wa := matcher.Route{Channel: matcher.ChannelWhatsApp, To: storetest.To2}
	sess, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute,
		Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: storetest.To}, wa}})
	if err != nil {
		t.Fatal(err)
	}
	wrong := matcher.Message{Provider: "meta", MessageID: "wamid.1", From: storetest.Alice, To: storetest.To2, Text: "000000", Channel: matcher.ChannelWhatsApp}
	if o, err := s.Ingest(ctx, wrong, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Attempted || o.SessionID != sess.ID {
		t.Fatalf("wrong code = %+v, %v", o, err)
	}
	// The first delivery stopped after the home's step: the number's
	// record is lost.
	if err := rc.Del(ctx, tagKey(storetest.To2, "d:meta\x00wamid.1")).Err(); err != nil {
		t.Fatal(err)
	}
	o, err := s.Ingest(ctx, wrong, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Attempted || o.SessionID != sess.ID {
		t.Fatalf("redelivered wrong code = %+v, %v", o, err)
	}
	if got, err := s.Get(ctx, sess.ID); err != nil || got.Attempts != 1 {
		t.Fatalf("attempts after a redelivery = %d, %v; want 1", got.Attempts, err)
	}
	if o, err := s.Ingest(ctx, wrong, matcher.IngestOptions{}); err != nil || !o.Duplicate || o.Kind != matcher.Attempted {
		t.Fatalf("third delivery = %+v, %v", o, err)
	}
	right := wrong
	right.MessageID, right.Text = "wamid.2", "482913"
	if o, err := s.Ingest(ctx, right, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched || o.SessionID != sess.ID {
		t.Fatalf("right code = %+v, %v", o, err)
	}
	if err := rc.Del(ctx, tagKey(storetest.To2, "d:meta\x00wamid.2")).Err(); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Ingest(ctx, right, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched || o.SessionID != sess.ID {
		t.Fatalf("redelivered right code = %+v, %v", o, err)
	}
	if got, err := s.Get(ctx, sess.ID); err != nil || got.Status != matcher.Verified || got.Signals.SenderSessions24h != 0 {
		t.Fatalf("session = %+v, %v", got, err)
	}
}

// clock is a settable time source for a store on a fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
