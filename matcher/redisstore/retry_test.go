package redisstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestIdempotentRetrySupersedes: a create that stopped after its home's
// step, before it cancelled the sessions it supersedes in other homes,
// leaves them pending only until its retry with the same Idempotency-Key,
// which replays the session and cancels them.
func TestIdempotentRetrySupersedes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	c := newClock()
	s := open(t, fakeOptions(srv.URL(), c.Now))
	// old is homed on To2, with a route on To: the tag of To links to it.
	old, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "111111", To: storetest.To2, TTL: time.Minute,
		Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: storetest.To2}, {Channel: matcher.ChannelWhatsApp, To: storetest.To}}})
	if err != nil {
		t.Fatal(err)
	}
	// The step in old's home fails: the create stops after its own.
	home := redisstore.SessionsKey(storetest.To2)
	if err := rc.Rename(ctx, home, home+"-aside").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, home, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	req := matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "222222", To: storetest.To, TTL: time.Minute, IdemKey: "i1", ReqHash: "h1"}
	if _, _, err := s.Create(ctx, req); !errors.Is(err, matcher.ErrUnavailable) {
		t.Fatalf("create with the other home broken = %v", err)
	}
	if err := rc.Del(ctx, home).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Rename(ctx, home+"-aside", home).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, old.ID); err != nil || got.Status != matcher.Pending {
		t.Fatalf("old after the failed create = %+v, %v", got, err)
	}
	nu, replayed, err := s.Create(ctx, req)
	if err != nil || !replayed || nu.Status != matcher.Pending {
		t.Fatalf("retry = %+v, %v, %v", nu, replayed, err)
	}
	if got, err := s.Get(ctx, old.ID); err != nil || got.Status != matcher.Cancelled || got.Reason != matcher.ReasonSuperseded {
		t.Fatalf("old after the retry = %+v, %v", got, err)
	}
	if got, err := s.Get(ctx, nu.ID); err != nil || got.Status != matcher.Pending || got.Code != "222222" {
		t.Fatalf("new after the retry = %+v, %v", got, err)
	}
	// A replay once the session has finished changes nothing.
	if _, err := s.Cancel(ctx, nu.ID); err != nil {
		t.Fatal(err)
	}
	again, replayed, err := s.Create(ctx, req)
	if err != nil || !replayed || again.ID != nu.ID || again.Status != matcher.Cancelled {
		t.Fatalf("replay of a finished session = %+v, %v, %v", again, replayed, err)
	}
}
