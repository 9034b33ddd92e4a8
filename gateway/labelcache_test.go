package gateway

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered is what a scrape of c says: each series' value by its label
// values joined with "/".
func gathered(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			k := ""
			for i, l := range m.GetLabel() {
				if i > 0 {
					k += "/"
				}
				k += l.GetValue()
			}
			got[k] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return got
}

// TestLabelCacheChildren: the children handed out are the vector's own
// (what they count is scraped), the same one for the same values whether
// found in the read-only map or among the ones added since, and the
// vector is asked once per label set, however many goroutines look it up.
func TestLabelCacheChildren(t *testing.T) {
	v := newCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "t"}, []string{"a", "b"})
	asked := map[string]int{}
	var mu sync.Mutex
	with := v.children.with
	v.children.with = func(lvs ...string) prometheus.Counter {
		mu.Lock()
		asked[lvs[0]+"/"+lvs[1]]++
		mu.Unlock()
		return with(lvs...)
	}
	const sets, rounds = 50, 20
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for r := range rounds {
				for i := range sets {
					v.WithLabelValues(strconv.Itoa((i+g+r)%sets), "x").Inc()
				}
			}
		})
	}
	wg.Wait()
	scraped := gathered(t, v)
	if len(scraped) != sets {
		t.Fatalf("%d series, want %d", len(scraped), sets)
	}
	for i := range sets {
		k := strconv.Itoa(i)
		if got := scraped[k+"/x"]; got != 4*rounds {
			t.Errorf("series %s counted %v, want %d", k, got, 4*rounds)
		}
		if asked[k+"/x"] != 1 {
			t.Errorf("the vector was asked %d times for %s, want once", asked[k+"/x"], k)
		}
	}
	if r := v.children.read.Load(); r == nil || len(*r) == 0 {
		t.Error("nothing was merged into the read-only map")
	}
}

// TestLabelCacheRefuses: values the vector refuses (the wrong number of
// them, not UTF-8) panic as the vector's WithLabelValues does, every
// time: nothing is remembered for them; ("a") is not ("a", ""). Values
// too long for a key are the vector's, every time.
func TestLabelCacheRefuses(t *testing.T) {
	v := newCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "t"}, []string{"a", "b"})
	v.WithLabelValues("a", "").Inc()
	for _, lvs := range [][]string{{"a"}, {"a", "", ""}, {"\xff", "b"}, {"a", "b", "c", "d", "e"}} {
		for range 2 {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("WithLabelValues(%q) did not panic", lvs)
					}
				}()
				v.WithLabelValues(lvs...)
			}()
		}
	}
	long := strings.Repeat("x", maxKey)
	v.WithLabelValues(long, "y").Inc()
	v.WithLabelValues(long, "y").Inc()
	if got := gathered(t, v)[long+"/y"]; got != 2 {
		t.Errorf("a series past maxKey counted %v, want 2", got)
	}
	h := newHistogramVec(prometheus.HistogramOpts{Name: "t_seconds", Help: "t"}, []string{"a"})
	h.WithLabelValues("x").Observe(1)
	h.WithLabelValues("x").Observe(2)
	if got := gathered(t, h); len(got) != 1 || got["x"] != 2 {
		t.Errorf("histogram series %v, want x: 2 observations", got)
	}
}

// BenchmarkLabelLookup: a child looked up by its label values, as each
// webhook does several times, through the cache and through the vector
// (the lookup alone: what the child counts is the same).
func BenchmarkLabelLookup(b *testing.B) {
	v := newCounterVec(prometheus.CounterOpts{Name: "t_total", Help: "t"}, []string{"provider", "outcome", "channel"})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.WithLabelValues("twilio", "verified", "sms")
		}
	})
	b.Run("vector", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v.CounterVec.WithLabelValues("twilio", "verified", "sms")
		}
	})
}
