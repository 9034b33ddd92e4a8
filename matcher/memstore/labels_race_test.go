package memstore

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mogate/mogate/matcher"
)

// TestDeferAndAckConcurrently: a session event deferred by one worker while
// another acks it (a lease that ran out) is no data race: the event table
// keeps the id prefix it read when the event entered, and never reads the
// session's pr byte, which AckEvent writes under the shard lock alone
// (run with -race).
func TestDeferAndAckConcurrently(t *testing.T) {
	m, _, _ := newTest(t)
	for i := range 20 { // a race is seen only when the two overlap
		s := create(t, m, "+4474001234"+strconv.Itoa(10+i), "482913")
		if _, err := m.cancel(s.ID); err != nil {
			t.Fatal(err)
		}
		evs, err := m.ClaimEvents(bg, time.Minute, 10)
		if err != nil || len(evs) != 1 {
			t.Fatal(evs, err)
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = m.DeferEvent(bg, evs[0], time.Now()) }()
		go func() { defer wg.Done(); _ = m.AckEvent(bg, evs[0], false) }()
		wg.Wait()
	}
}

// TestLabelsPastTableSurviveRestart: 300 label sets (more than the shared
// table holds, so some sessions keep theirs in their extra fields) read
// back the same after a snapshot and a restart that finds the table
// holding other sets first.
func TestLabelsPastTableSurviveRestart(t *testing.T) {
	saved := labelSets
	defer func() { labelSets = saved }()
	labelSets = newTable(func(l labelSet) labelSet { return labelSet{l.api + "", l.country, l.language} })
	dir := t.TempDir()
	c := &clock{t: time.Now()}
	m := openDurable(t, dir, c)
	var ids []string
	want := map[string]matcher.Session{}
	for i := range 300 {
		req := matcher.CreateRequest{Key: "k", API: "v1", Country: "C" + strconv.Itoa(i), Language: "en", Number: "+1" + strconv.Itoa(2000000000+i), To: to, TTL: time.Hour}
		if i%3 == 0 {
			req.API = ""
		}
		s, _, err := m.createOnce(req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
		want[s.ID] = s
	}
	// A restart finds a table that holds other label sets first.
	before := state(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	labelSets = newTable(func(l labelSet) labelSet { return l })
	labelSets.index(labelSet{api: "other", country: "ZZ"})
	m2 := openDurable(t, dir, c)
	defer m2.Close()
	if after := state(m2); after != before {
		t.Fatal("the state recovered differs from the state closed")
	}
	for _, id := range ids {
		g, err := m2.Get(bg, id)
		if err != nil {
			t.Fatal(err)
		}
		w := want[id]
		if g.API != w.API || g.Country != w.Country || g.Language != w.Language {
			t.Fatalf("%s: %q %q %q want %q %q %q", id, g.API, g.Country, g.Language, w.API, w.Country, w.Language)
		}
	}
}

// TestTableIndexConcurrently: a table's index, with its front entry of the
// value last found, gives every value one index and name gives the value
// back, with values alternating between goroutines and past the table's
// capacity (run with -race).
func TestTableIndexConcurrently(t *testing.T) {
	tb := newTable(func(s string) string { return s })
	var wg sync.WaitGroup
	got := make([]map[string]uint8, 4)
	for g := range got {
		got[g] = map[string]uint8{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				v := "p" + strconv.Itoa((i*7+g)%300)
				if i%2 == 1 {
					v = "p1" // one value between the others: found in front, then not
				}
				j := tb.index(v)
				if old, ok := got[g][v]; ok && old != j {
					t.Errorf("%q: index %d, then %d", v, old, j)
					return
				}
				got[g][v] = j
				if j != tableInX && tb.name(j) != v {
					t.Errorf("%q: index %d names %q", v, j, tb.name(j))
					return
				}
			}
		}()
	}
	wg.Wait()
	for v, j := range got[0] {
		for g := range got[1:] {
			if k, ok := got[g+1][v]; ok && k != j {
				t.Fatalf("%q: index %d and %d", v, j, k)
			}
		}
	}
}
