package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestLinkedMultipartRedelivered: the part completing a multipart message
// on a linked number whose home step fails (the provider gets a 5xx)
// keeps the parts for its redelivery, which then verifies the session;
// another message completing the same parts meanwhile finds them claimed
// and only stores itself.
func TestLinkedMultipartRedelivered(t *testing.T) {
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
	part := func(id string, n int, text string) matcher.Message {
		return matcher.Message{Provider: "meta", MessageID: id, From: storetest.Alice, To: storetest.To2, Text: text,
			Channel: matcher.ChannelWhatsApp, Parts: 2, Part: n, PartsRef: "ref1"}
	}
	if o, err := s.Ingest(ctx, part("wamid.1", 1, "Code 482"), matcher.IngestOptions{}); err != nil || o.Kind != matcher.PartStored {
		t.Fatalf("first part = %+v, %v", o, err)
	}
	// The home's sessions hash of the wrong type: the home's step fails.
	home := redisstore.SessionsKey(storetest.To)
	if err := rc.Rename(ctx, home, home+"-aside").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, home, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	last := part("wamid.2", 2, "913")
	if o, err := s.Ingest(ctx, last, matcher.IngestOptions{}); err == nil {
		t.Fatalf("completing part with the home broken = %+v, want an error", o)
	}
	if err := rc.Rename(ctx, home+"-aside", home).Err(); err != nil {
		t.Fatal(err)
	}
	// Another completing part (a new message id) finds the parts claimed.
	if o, err := s.Ingest(ctx, part("wamid.3", 2, "000"), matcher.IngestOptions{}); err != nil || o.Kind != matcher.PartStored {
		t.Fatalf("another completing part = %+v, %v", o, err)
	}
	o, err := s.Ingest(ctx, last, matcher.IngestOptions{})
	if err != nil || o.Kind != matcher.Matched || o.SessionID != sess.ID || o.Duplicate {
		t.Fatalf("redelivered completing part = %+v, %v", o, err)
	}
	if got, err := s.Get(ctx, sess.ID); err != nil || got.Status != matcher.Verified || got.MessageID != "wamid.2" || got.Attempts != 0 {
		t.Fatalf("session = %+v, %v", got, err)
	}
	if o, err := s.Ingest(ctx, last, matcher.IngestOptions{}); err != nil || !o.Duplicate || o.Kind != matcher.Matched {
		t.Fatalf("third delivery = %+v, %v", o, err)
	}
}

// TestCallsSpendNoBudget: an unattested call and an ambiguous one change
// nothing but their record: they leave the sender's unmatched budget
// whole, so the sender's next message still tries capture sessions.
func TestCallsSpendNoBudget(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	c := newClock()
	o := fakeOptions(srv.URL(), c.Now)
	o.UnmatchedPerSenderPerHour = 1
	s := open(t, o)
	call := matcher.Route{Channel: matcher.ChannelCall, To: storetest.To}
	for _, k := range []string{"k1", "k2"} {
		if _, _, err := s.Create(ctx, matcher.CreateRequest{Key: k, Number: storetest.Mallet, Code: "111111", To: storetest.To, TTL: time.Minute,
			Routes: []matcher.Route{call}}); err != nil {
			t.Fatal(err)
		}
	}
	capture, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k1", To: storetest.To, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []matcher.Message{
		{Provider: "tw", MessageID: "CA1", From: storetest.Mallet, To: storetest.To, Channel: matcher.ChannelCall},
		{Provider: "tw", MessageID: "CA2", From: storetest.Mallet, To: storetest.To, Channel: matcher.ChannelCall, Attestation: "B"},
		{Provider: "tw", MessageID: "CA3", From: storetest.Mallet, To: storetest.To, Channel: matcher.ChannelCall, Attestation: "A"},
	}
	for _, m := range msgs {
		if o, err := s.Ingest(ctx, m, matcher.IngestOptions{UnmatchedKeys: []string{"k1"}}); err != nil || o.Kind != matcher.Unmatched {
			t.Fatalf("call %s = %+v, %v", m.MessageID, o, err)
		}
	}
	sms := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Mallet, To: storetest.To, Text: capture.Code}
	if o, err := s.Ingest(ctx, sms, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched || o.SessionID != capture.ID {
		t.Fatalf("capture code after the calls = %+v, %v", o, err)
	}
}
