package pool

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/memstore"
)

func testPool(t *testing.T, specs []Spec) *Pool {
	t.Helper()
	p, err := New(specs, Options{TripAfter: 3, OpenFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var specs = []Spec{
	{Number: "+14155550100", Provider: "twilio", Weight: 1},
	{Number: "+14155550101", Provider: "plivo", Weight: 1},
	{Number: "+447700900123", Provider: "vonage", Countries: []string{"GB", "IE"}, Weight: 1},
	{Number: "+33757000000", Provider: "plivo", Countries: []string{"*"}, Weight: 1},
}

func TestAssignByCountry(t *testing.T) {
	p := testPool(t, specs)
	cases := []struct {
		sender string
		want   []string
	}{
		{"+14155550123", []string{"+14155550100", "+14155550101"}},
		{"+447400123456", []string{"+447700900123"}},
		{"+16045550123", []string{"+14155550100", "+14155550101"}}, // Canada: same numbering plan as the US numbers
		{"+353851234567", []string{"+447700900123"}},               // Ireland served by the GB number
		{"+4915112345678", []string{"+33757000000"}},               // no German number: "*"
	}
	for _, tc := range cases {
		n, err := p.Assign(tc.sender, "", "", "")
		if err != nil {
			t.Fatalf("%s: %v", tc.sender, err)
		}
		found := false
		for _, w := range tc.want {
			found = found || n.Number == w
		}
		if !found {
			t.Errorf("%s got %s, want one of %v", tc.sender, n.Number, tc.want)
		}
	}
}

func TestAssignPinnedAndErrors(t *testing.T) {
	p := testPool(t, specs)
	if n, err := p.Assign("+14155550123", "+33757000000", "", ""); err != nil || n.Number != "+33757000000" {
		t.Fatalf("pinned = %v %v", n, err)
	}
	if _, err := p.Assign("+14155550123", "+19999999999", "", ""); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("pinned outside pool: %v", err)
	}
	if _, err := p.Assign("12345", "", "", ""); !errors.Is(err, ErrBadNumber) {
		t.Fatalf("bad sender: %v", err)
	}
	noStar := testPool(t, specs[:1])
	if _, err := noStar.Assign("+4915112345678", "", "", ""); !errors.Is(err, ErrNoNumber) {
		t.Fatalf("no number: %v", err)
	}
	// Capture mode: the country hint chooses; without it, "*".
	if n, _ := p.Assign("", "", "gb", "session-1"); n.Number != "+447700900123" {
		t.Errorf("capture GB hint = %s", n.Number)
	}
	if n, _ := p.Assign("", "", "", "session-1"); n.Number != "+33757000000" {
		t.Errorf("capture no hint = %s", n.Number)
	}
}

func TestRendezvousStableAndWeighted(t *testing.T) {
	p := testPool(t, specs)
	q := testPool(t, []Spec{specs[1], specs[0], specs[3], specs[2]}) // another replica, other order
	for i := range 100 {
		s := fmt.Sprintf("+1415555%04d", i)
		a, _ := p.Assign(s, "", "", "")
		b, _ := q.Assign(s, "", "", "")
		c, _ := p.Assign(s, "", "", "")
		if a.Number != b.Number || a.Number != c.Number {
			t.Fatalf("%s: %s / %s / %s", s, a.Number, b.Number, c.Number)
		}
	}
	w := testPool(t, []Spec{{Number: "+14155550100", Weight: 3}, {Number: "+14155550101", Weight: 1}})
	counts := map[string]int{}
	const n = 6000
	for i := range n {
		x, err := w.Assign(fmt.Sprintf("+1212%03d%04d", 200+i/10000, i%10000), "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		counts[x.Number]++
	}
	share := float64(counts["+14155550100"]) / n
	if math.Abs(share-0.75) > 0.04 {
		t.Fatalf("weight 3:1 gave share %.3f", share)
	}
}

// TestDrained: a number of weight 0 gets no new session, by country, by
// "*", in capture mode or pinned, while the pool still knows it, so that
// messages to sessions already on it are routed and verify (the gateway
// matches inbound messages in the matcher, by receiving number, whatever
// the pool's weights: TestDrainedPendingStillVerifies).
func TestDrained(t *testing.T) {
	drained := slices.Clone(specs)
	drained[0].Weight = 0 // a US number
	drained[2].Weight = 0 // the only GB/IE number
	p := testPool(t, drained)
	for i := range 500 {
		us, err := p.Assign(fmt.Sprintf("+1212555%04d", i), "", "", "")
		if err != nil || us.Number != "+14155550101" {
			t.Fatalf("US sender got %v %v, want the undrained +14155550101", us, err)
		}
		gb, err := p.Assign(fmt.Sprintf("+44740012%04d", i), "", "", "")
		if err != nil || gb.Number != "+33757000000" {
			t.Fatalf("GB sender got %v %v, want the \"*\" number (the GB one is drained)", gb, err)
		}
		capture, err := p.Assign("", "", "GB", fmt.Sprint("session-", i))
		if err != nil || capture.Number != "+33757000000" {
			t.Fatalf("capture GB got %v %v", capture, err)
		}
	}
	if _, err := p.Assign("+14155550123", "+14155550100", "", ""); !errors.Is(err, ErrDrained) || !errors.Is(err, ErrNoNumber) {
		t.Fatalf("pinned to a drained number: %v, want ErrDrained (an ErrNoNumber)", err)
	}
	if n, err := p.Assign("+14155550123", "+14155550101", "", ""); err != nil || n.Number != "+14155550101" {
		t.Fatalf("pinned to a live number: %v %v", n, err)
	}
	// Everything drained: no number, rather than a drained one.
	allDrained := testPool(t, []Spec{{Number: "+33757000000", Countries: []string{"*"}}})
	if _, err := allDrained.Assign("+4915112345678", "", "", ""); !errors.Is(err, ErrNoNumber) {
		t.Fatalf("only drained numbers: %v", err)
	}
	// The pool still knows the drained numbers: inbound routing and health.
	if n, ok := p.Lookup("+14155550100"); !ok || n.Weight != 0 {
		t.Fatalf("Lookup of a drained number = %v %v", n, ok)
	}
	if ns := p.ByProvider("vonage"); len(ns) != 1 || ns[0].Number != "+447700900123" {
		t.Fatalf("ByProvider of a drained entry = %v", ns)
	}
	if _, err := New([]Spec{{Number: "+14155550100", Weight: -1}}, Options{}); err == nil {
		t.Fatal("negative weight accepted")
	}
}

// TestDrainedPendingStillVerifies: a session made while its number took new
// sessions verifies after the number is drained (the config reloaded with
// weight 0 at a restart), while new sessions go elsewhere.
func TestDrainedPendingStillVerifies(t *testing.T) {
	m := memstore.New(memstore.Options{})
	before := testPool(t, specs[:2])
	sender := "+12125550123"
	n, err := before.Assign(sender, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	sess, _, err := m.Create(context.Background(), matcher.CreateRequest{Key: "shop", Number: sender, To: n.Number, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	drained := slices.Clone(specs[:2])
	for i := range drained {
		if drained[i].Number == n.Number {
			drained[i].Weight = 0
		}
	}
	after := testPool(t, drained)
	if again, err := after.Assign(sender, "", "", ""); err != nil || again.Number == n.Number {
		t.Fatalf("new session for the same sender got %v %v, want the other number", again, err)
	}
	out, err := m.Ingest(context.Background(), matcher.Message{Provider: n.Provider, MessageID: "SM1", From: sender, To: n.Number, Text: "code " + sess.Code}, matcher.IngestOptions{})
	if err != nil || out.Kind != matcher.Matched || out.SessionID != sess.ID {
		t.Fatalf("message to the drained number: %+v %v", out, err)
	}
	after.Verified(n.Number) // what the gateway does next: the pool accepts it
}

func TestHealthBreaker(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p, _ := New(specs[:2], Options{TripAfter: 3, OpenFor: time.Hour, Now: func() time.Time { return now }})
	sender := "+14155550123"
	first, _ := p.Assign(sender, "", "", "")
	other := "+14155550100"
	if first.Number == other {
		other = "+14155550101"
	}
	// Silent expiries do not count while nothing verifies anywhere.
	for range 5 {
		p.Expired(first.Number, true, time.Hour)
	}
	if first.Health() != "healthy" {
		t.Fatal("tripped without evidence that other numbers work")
	}
	p.Verified(other)
	p.Expired(first.Number, false, time.Hour) // the user did text: not the number's fault
	for range 3 {
		p.Expired(first.Number, true, time.Hour)
	}
	if first.Health() != "unhealthy" {
		t.Fatalf("health = %s", first.Health())
	}
	if n, _ := p.Assign(sender, "", "", ""); n.Number != other {
		t.Fatalf("assigned to the unhealthy number %s", n.Number)
	}
	// All candidates unhealthy: assign anyway rather than fail.
	lone, _ := New(specs[:1], Options{TripAfter: 1, Now: func() time.Time { return now }})
	lone.Verified("+19999999999")
	lone.Expired("+14155550100", true, time.Hour)
	if n, err := lone.Assign(sender, "", "", ""); err != nil || n.Health() != "unhealthy" {
		t.Fatalf("lone = %v %v", n, err)
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{"+1 (415) 555-0123": "+14155550123", "+447700900123": "+447700900123"} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"4155550123", "+1", "+abc", "", "+1415555012345678"} {
		if _, err := Normalize(bad); !errors.Is(err, ErrBadNumber) {
			t.Errorf("Normalize(%q) accepted", bad)
		}
	}
}

func TestNational(t *testing.T) {
	cases := []struct{ number, receiving, want string }{
		{"6505551212", "+14155550100", "+16505551212"},
		{"07400 123456", "+447700900123", "+447400123456"},
		{"+33612345678", "+14155550100", "+33612345678"},
		{"MyBank", "+14155550100", "MyBank"},
		{"123", "+14155550100", "123"},
		{"6505551212", "not a number", "6505551212"},
	}
	for _, tc := range cases {
		if got := National(tc.number, tc.receiving); got != tc.want {
			t.Errorf("National(%q, %q) = %q, want %q", tc.number, tc.receiving, got, tc.want)
		}
	}
}

// TestLast24h: created, verified and expired are counted per number over a
// sliding 24 hours (hourly buckets), and other numbers' counts stay apart.
func TestLast24h(t *testing.T) {
	now := time.Date(2026, 1, 1, 10, 30, 0, 0, time.UTC)
	p, err := New(specs, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	const n = "+14155550100"
	for range 3 {
		p.Created(n)
	}
	p.Verified(n)
	p.Expired(n, false, time.Hour)
	p.Created("+14155550101")
	p.Created("+19999999999") // not in the pool: ignored
	now = now.Add(time.Hour)
	p.Created(n)
	got, _ := p.Lookup(n)
	if a := got.Last24h(); a != (Activity{Created: 4, Verified: 1, Expired: 1}) {
		t.Fatalf("Last24h = %+v", a)
	}
	if other, _ := p.Lookup("+14155550101"); other.Last24h() != (Activity{Created: 1}) {
		t.Fatalf("other number = %+v", other.Last24h())
	}
	now = now.Add(23 * time.Hour) // the first hour has left the window
	if a := got.Last24h(); a != (Activity{Created: 1}) {
		t.Fatalf("23 h later = %+v", a)
	}
	p.Verified(n) // reuses the bucket of 24 hours ago
	if a := got.Last24h(); a != (Activity{Created: 1, Verified: 1}) {
		t.Fatalf("after wrapping = %+v", a)
	}
	now = now.Add(48 * time.Hour)
	if a := got.Last24h(); a != (Activity{}) {
		t.Fatalf("two days later = %+v", a)
	}
}

// TestHealthHookAndReload: OnHealth sees a number trip and recover, and a
// reloaded pool keeps the health of the numbers it keeps while a new number
// starts healthy.
func TestHealthHookAndReload(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var changes []string
	p, err := New(specs[:2], Options{TripAfter: 1, OpenFor: 50 * time.Millisecond, Now: func() time.Time { return now },
		OnHealth: func(number, from, to string) { changes = append(changes, number+" "+from+"->"+to) }})
	if err != nil {
		t.Fatal(err)
	}
	p.Verified("+14155550101")
	p.Expired("+14155550100", true, time.Hour)
	if want := []string{"+14155550100 healthy->unhealthy"}; !slices.Equal(changes, want) {
		t.Fatalf("changes = %q, want %q", changes, want)
	}
	q, err := p.Reload([]Spec{specs[0], specs[2]})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := q.Lookup("+14155550100"); n.Health() != "unhealthy" {
		t.Fatalf("reload forgot the health of a kept number: %s", n.Health())
	}
	if n, _ := q.Lookup("+447700900123"); n.Health() != "healthy" {
		t.Fatalf("a new number starts %s", n.Health())
	}
	if _, ok := q.Lookup("+14155550101"); ok {
		t.Fatal("a removed number is still in the pool")
	}
	// The kept breaker half-opens and closes after a verification: the
	// hook still reports it.
	time.Sleep(100 * time.Millisecond) // gobreaker's own clock
	q.Verified("+14155550100")
	if want := "+14155550100 probing->healthy"; changes[len(changes)-1] != want {
		t.Fatalf("changes = %q, want last %q", changes, want)
	}
	if _, err := p.Reload([]Spec{{Number: "+1", Weight: 1}}); err == nil {
		t.Fatal("a bad spec reloaded")
	}
}

// TestAssignChannel: a route on a channel is chosen among the numbers that
// serve it, by the same rules (country, then "*", weight, health,
// stickiness); none is ErrNoChannel, distinct from "no number".
func TestAssignChannel(t *testing.T) {
	specs := []Spec{
		{Number: "+14155550100", Provider: "twilio", Weight: 1},                                                  // sms (no channels: sms)
		{Number: "+14155550101", Provider: "twilio", Weight: 1, Channels: []string{"sms", "whatsapp", "call"}},   // US, three channels
		{Number: "+15550984277", Provider: "meta", Weight: 1, Channels: []string{"whatsapp"}, NumberID: "11489"}, // US, whatsapp only
		{Number: "+15550984278", Provider: "meta", Weight: 0, Channels: []string{"whatsapp"}, NumberID: "11490"}, // drained
		{Number: "+447700900123", Provider: "vonage", Countries: []string{"GB"}, Weight: 1},                      // GB, sms
		{Number: "+33757000000", Provider: "meta", Countries: []string{"*"}, Weight: 1, Channels: []string{"whatsapp"}, NumberID: "3"},
	}
	p := testPool(t, specs)
	serve := func(channel string, want ...string) {
		t.Helper()
		got := map[string]bool{}
		for i := range 200 {
			n, err := p.AssignChannel(channel, fmt.Sprintf("+1415555%04d", i), "", "", "")
			if err != nil {
				t.Fatalf("%s: %v", channel, err)
			}
			if !n.Serves(channel) {
				t.Fatalf("%s: %s does not serve it", channel, n.Number)
			}
			got[n.Number] = true
		}
		if len(got) != len(want) {
			t.Errorf("%s routes of US senders: %v, want %v", channel, got, want)
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("%s routes never used %s: %v", channel, w, got)
			}
		}
	}
	serve("sms", "+14155550100", "+14155550101")
	serve("whatsapp", "+14155550101", "+15550984277")
	serve("call", "+14155550101")
	// Assign is the sms route: never a whatsapp-only number.
	for i := range 100 {
		if n, err := p.Assign(fmt.Sprintf("+1415555%04d", i), "", "", ""); err != nil || !n.Serves("sms") {
			t.Fatalf("Assign = %v, %v", n, err)
		}
	}
	// Stickiness: the same sender gets the same route.
	a, _ := p.AssignChannel("whatsapp", "+14155550123", "", "", "")
	b, _ := p.AssignChannel("whatsapp", "+14155550123", "", "", "")
	if a != b {
		t.Errorf("the same sender got %s then %s", a.Number, b.Number)
	}
	// GB: no GB number serves whatsapp, so the "*" one does; call: none.
	if n, err := p.AssignChannel("whatsapp", "+447400123456", "", "", ""); err != nil || n.Number != "+33757000000" {
		t.Errorf("GB whatsapp = %v, %v; want the * number", n, err)
	}
	if n, err := p.AssignChannel("call", "+447400123456", "", "", ""); !errors.Is(err, ErrNoChannel) || !errors.Is(err, ErrNoNumber) || n != nil {
		t.Errorf("GB call = %v, %v; want ErrNoChannel", n, err)
	}
	// Pinned: it must serve the channel; Assign, which names none, takes it.
	if _, err := p.AssignChannel("sms", "+14155550123", "+15550984277", "", ""); !errors.Is(err, ErrNoChannel) {
		t.Errorf("sms pinned to a whatsapp-only number: %v", err)
	}
	if n, err := p.Assign("+14155550123", "+15550984277", "", ""); err != nil || n.Number != "+15550984277" {
		t.Errorf("Assign pinned to a whatsapp-only number = %v, %v", n, err)
	}
	if _, err := p.Assign("+14155550123", "+15550984278", "", ""); !errors.Is(err, ErrDrained) {
		t.Errorf("Assign pinned to a drained number: %v", err)
	}
	if n, err := p.AssignChannel("whatsapp", "+14155550123", "+15550984277", "", ""); err != nil || n.Number != "+15550984277" {
		t.Errorf("whatsapp pinned = %v, %v", n, err)
	}
	// A pool without a number for the sender at all: sms is ErrNoNumber
	// as before, another channel ErrNoChannel.
	us := testPool(t, specs[:3])
	if _, err := us.AssignChannel("sms", "+4915112345678", "", "", ""); !errors.Is(err, ErrNoNumber) || errors.Is(err, ErrNoChannel) {
		t.Errorf("sms, no number for DE: %v, want ErrNoNumber", err)
	}
	if _, err := us.AssignChannel("whatsapp", "+4915112345678", "", "", ""); !errors.Is(err, ErrNoChannel) {
		t.Errorf("whatsapp, no number for DE: %v, want ErrNoChannel", err)
	}
	// Only whatsapp numbers for the sender: an sms route is ErrNoChannel.
	waOnly := testPool(t, specs[2:3])
	if _, err := waOnly.Assign("+14155550123", "", "", ""); !errors.Is(err, ErrNoChannel) {
		t.Errorf("sms with only a whatsapp number: %v, want ErrNoChannel", err)
	}
	// Health: a tripped whatsapp number is skipped while another serves.
	for range 3 {
		p.lastVerified.Store(p.now().UnixNano())
		p.Expired("+15550984277", true, time.Hour)
	}
	for i := range 50 {
		if n, _ := p.AssignChannel("whatsapp", fmt.Sprintf("+1415555%04d", i), "", "", ""); n.Number != "+14155550101" {
			t.Fatalf("an unhealthy number was chosen: %s", n.Number)
		}
	}
}

func TestByNumberID(t *testing.T) {
	p := testPool(t, []Spec{
		{Number: "+15550984277", Provider: "meta", Weight: 1, Channels: []string{"whatsapp"}, NumberID: "11489"},
		{Number: "+15550984278", Provider: "meta2", Weight: 1, Channels: []string{"whatsapp"}, NumberID: "11490"},
		{Number: "+14155550100", Provider: "twilio", Weight: 1},
	})
	if n, ok := p.ByNumberID("meta", "11489"); !ok || n.Number != "+15550984277" {
		t.Errorf("ByNumberID = %v, %v", n, ok)
	}
	for _, c := range [][2]string{{"meta", "11490"}, {"meta", ""}, {"twilio", ""}, {"meta", "1"}} {
		if n, ok := p.ByNumberID(c[0], c[1]); ok {
			t.Errorf("ByNumberID(%q, %q) = %s: another entry's or no id", c[0], c[1], n.Number)
		}
	}
	if n, _ := p.Lookup("+14155550100"); fmt.Sprint(n.Channels) != "[sms]" {
		t.Errorf("default channels = %v, want [sms]", n.Channels)
	}
}

// TestAssignAvoiding: busy numbers are never chosen, the next best is;
// with every candidate busy (or the pinned number busy) the error is
// ErrBusy, which callers refuse as ErrNoChannel.
func TestAssignAvoiding(t *testing.T) {
	p, err := New([]Spec{
		{Number: "+14155550100", Provider: "tw", Channels: []string{"sms", "call"}, Weight: 1},
		{Number: "+14155550101", Provider: "tw", Channels: []string{"sms", "call"}, Weight: 1},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.AssignChannel("call", "+14155550123", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	busy := map[string]bool{first.Number: true}
	isBusy := func(n string) bool { return busy[n] }
	second, err := p.AssignAvoiding("call", "+14155550123", "", "", "", isBusy)
	if err != nil || second.Number == first.Number {
		t.Fatalf("second = %v %v, first %s", second, err, first.Number)
	}
	busy[second.Number] = true
	if n, err := p.AssignAvoiding("call", "+14155550123", "", "", "", isBusy); !errors.Is(err, ErrBusy) || !errors.Is(err, ErrNoChannel) || n != nil {
		t.Fatalf("all busy: %v %v", n, err)
	}
	if n, err := p.AssignAvoiding("call", "+14155550123", first.Number, "", "", isBusy); !errors.Is(err, ErrBusy) || n != nil {
		t.Fatalf("pinned busy: %v %v", n, err)
	}
}
