package memstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestWaitWokenBySecondRoute: a session proven on the number of its
// second route, whose index lives in another shard than its home, wakes
// the Wait calls registered at its home.
func TestWaitWokenBySecondRoute(t *testing.T) {
	m, _, _ := newTest(t)
	from := alice
	for i := 0; pairShard(to, from) == pairShard(to2, from); i++ {
		from = "+1415555" + strconv.Itoa(1000+i)
	}
	s, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from, Code: "482913", To: to, TTL: time.Hour,
		Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelWhatsApp, To: to2}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan matcher.Session)
	go func() {
		got, _ := m.Wait(ctx, s.ID)
		done <- got
	}()
	for m.watchers() == 0 {
		time.Sleep(time.Millisecond) // until Wait has registered
	}
	if o := ingest(t, m, matcher.Message{Provider: "meta", MessageID: "wamid.1", From: from, To: to2, Channel: matcher.ChannelWhatsApp, Text: "482913"}); o.Kind != matcher.Matched {
		t.Fatalf("whatsapp on the second number: %+v", o)
	}
	if n := m.watchers(); n != 0 {
		t.Fatalf("%d watchers still registered after the verification", n)
	}
	if got := <-done; got.Status != matcher.Verified {
		t.Fatalf("Wait returned %+v", got)
	}
}

// TestFNVUnrolled: the shard hashes, four bytes a step, are FNV-1a a byte
// at a time with 0xff after each part (as written into every id made so
// far), for parts of every length to 4 steps and a tail; so is a pair's
// shard from its number's state (pairShardAt, as ingest finds it).
func TestFNVUnrolled(t *testing.T) {
	ref := func(parts ...string) uint32 {
		h := uint32(2166136261)
		for _, p := range parts {
			for _, c := range []byte(p + "\xff") {
				h ^= uint32(c)
				h *= 16777619
			}
		}
		return h
	}
	const digits = "+1415555012345678901"
	for i := range len(digits) + 1 {
		for j := range len(digits) + 1 {
			a, b := digits[:i], digits[len(digits)-j:]
			want := ref(a, b)
			if fnv32(a, b) != want || fnv32b(a, []byte(b)) != want {
				t.Fatalf("(%q, %q): fnv32 %x, fnv32b %x, want %x", a, b, fnv32(a, b), fnv32b(a, []byte(b)), want)
			}
			if got := pairShardAt(fnvNumber(a), b); got != int(want%numShards) || got != pairShard(a, b) {
				t.Fatalf("(%q, %q): pairShardAt %d, pairShard %d, want %d", a, b, got, pairShard(a, b), want%numShards)
			}
		}
	}
	if got, want := pairShard("+14155550100", "+14155550123"), int(ref("+14155550100", "+14155550123")%numShards); got != want {
		t.Fatalf("pairShard %d, want %d", got, want)
	}
}

// TestVerifyHoldsEveryShard: a session with routes on two numbers whose
// pairs are in two shards is verified (on either number) with both
// shards locked, as the records are journaled: verifyPair locks one shard
// first and must take the other too.
func TestVerifyHoldsEveryShard(t *testing.T) {
	m := New(Options{})
	from := alice
	for i := 0; pairShard(to, from) == pairShard(to2, from); i++ {
		from = "+1415555" + strconv.Itoa(1000+i)
	}
	shards := []int{pairShard(to, from), pairShard(to2, from)}
	var unlocked []int
	m.tap = func([]Record) {
		for _, i := range shards {
			if m.shards[i].mu.TryLock() {
				unlocked = append(unlocked, i)
				m.shards[i].mu.Unlock()
			}
		}
	}
	for n, num := range []string{to, to2} {
		_, _, err := m.createOnce(matcher.CreateRequest{Key: "k", Number: from, Code: "482913", To: to, TTL: time.Hour,
			Routes: []matcher.Route{{Channel: matcher.ChannelSMS, To: to}, {Channel: matcher.ChannelSMS, To: to2}}})
		if err != nil {
			t.Fatal(err)
		}
		unlocked = nil
		o, err := m.ingest(&matcher.Message{Provider: "tw", MessageID: strconv.Itoa(n), From: from, To: num, Text: "482913"}, matcher.IngestOptions{})
		if err != nil || o.Kind != matcher.Matched {
			t.Fatal(o, err)
		}
		if len(unlocked) > 0 {
			t.Fatalf("verified on %s with shards %v of %v unlocked", num, unlocked, shards)
		}
	}
}
