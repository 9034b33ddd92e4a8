package redisstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/redisstore/redistest"
	"github.com/mogate/mogate/matcher/storetest"
)

// TestLibraryOfAnotherBuild: the library of a build whose Lua differs has
// another name, so on a Redis shared with that build (another deployment,
// or replicas during a rolling upgrade) neither replaces the other's
// functions.
func TestLibraryOfAnotherBuild(t *testing.T) {
	name, _ := redisstore.Library("")
	otherName, otherCode := redisstore.Library(redisstore.LibraryBody + "\n-- another build\n")
	if otherName == name {
		t.Fatalf("a changed library keeps the name %s", name)
	}
	srv := redistest.Start(t)
	ctx := context.Background()
	rc := srv.Client()
	if err := rc.FunctionLoad(ctx, otherCode).Err(); err != nil {
		t.Fatal(err)
	}
	s := open(t, options(srv.URL(), nil))
	if _, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, Code: "482913", To: storetest.To, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	libs, err := rc.FunctionList(ctx, redis.FunctionListQuery{}).Result()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range libs {
		names = append(names, l.Name)
		for _, f := range l.Functions {
			if !strings.HasPrefix(f.Name, l.Name+"_") {
				t.Errorf("function %s of library %s lacks its name", f.Name, l.Name)
			}
		}
	}
	slices.Sort(names)
	want := []string{name, otherName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("libraries = %v, want %v (both builds')", names, want)
	}
}

// TestWakeChannelPerDeployment: a final status wakes its own deployment's
// channel when calls of two deployments sharing one Redis alternate
// (library.lua wake keeps the channel of the last keys it saw).
func TestWakeChannelPerDeployment(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	stores := map[string]*redisstore.Store{}
	for _, p := range []string{"a", "b:staging"} {
		o := options(srv.URL(), nil)
		o.Prefix = p
		stores[p] = open(t, o)
	}
	sub := srv.Client().Subscribe(ctx, "a:wake", "b:staging:wake")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscriptions confirmed
		t.Fatal(err)
	}
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, p := range []string{"a", "b:staging", "a", "a", "b:staging"} {
		sess, _, err := stores[p].Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stores[p].Cancel(ctx, sess.ID); err != nil {
			t.Fatal(err)
		}
		want[p+":wake"] = append(want[p+":wake"], sess.ID)
	}
	got := map[string][]string{}
	for range 5 {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := sub.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			t.Fatalf("received %v, then: %v", got, err)
		}
		got[m.Channel] = append(got[m.Channel], m.Payload)
	}
	for ch, ids := range want {
		if !slices.Equal(got[ch], ids) {
			t.Errorf("%s carried %v, want %v", ch, got[ch], ids)
		}
	}
}

// TestFinishCountsANumberOnce: a session with two routes on one number
// (SMS and WhatsApp) leaves that number's pending count once when it is
// verified, so another session pending there still counts.
func TestFinishCountsANumberOnce(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, options(srv.URL(), nil))
	ctx := context.Background()
	two, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Alice, To: storetest.To, TTL: time.Minute,
		Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: storetest.To}, {Channel: matcher.ChannelWhatsApp, To: storetest.To}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create(ctx, matcher.CreateRequest{Key: "k", Number: storetest.Mallet, To: storetest.To, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	pending := func(step string, want map[string]int) {
		t.Helper()
		got, err := s.PendingByNumber(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) || got[storetest.To] != want[storetest.To] {
			t.Fatalf("%s: pending by number %v, want %v", step, got, want)
		}
	}
	pending("created", map[string]int{storetest.To: 2})
	msg := matcher.Message{Provider: "tw", MessageID: "SM1", From: storetest.Alice, To: storetest.To, Text: "code " + two.Code}
	if o, err := s.Ingest(ctx, msg, matcher.IngestOptions{}); err != nil || o.Kind != matcher.Matched || o.SessionID != two.ID {
		t.Fatalf("Ingest = %+v, %v", o, err)
	}
	pending("one verified", map[string]int{storetest.To: 1})
}
