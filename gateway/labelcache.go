package gateway

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counterVec is a prometheus.CounterVec whose WithLabelValues finds a
// child it has handed out before without the vector's work: hashing every
// byte of the values, checking them as UTF-8, and its read lock, which
// every request took several times, from every core (webhook, message,
// request latency, then the outbox's final-status series). What it hands
// out is the vector's own child, so the series and the scrape are the
// vector's.
type counterVec struct {
	*prometheus.CounterVec
	children labelCache[prometheus.Counter]
}

func newCounterVec(opts prometheus.CounterOpts, labels []string) *counterVec {
	v := &counterVec{CounterVec: prometheus.NewCounterVec(opts, labels)}
	v.children.with = v.CounterVec.WithLabelValues
	return v
}

// WithLabelValues is the vector's: it panics where the vector's does
// (a wrong number of values, or one that is not UTF-8).
func (v *counterVec) WithLabelValues(lvs ...string) prometheus.Counter { return v.children.get(lvs) }

// histogramVec is counterVec for a prometheus.HistogramVec.
type histogramVec struct {
	*prometheus.HistogramVec
	children labelCache[prometheus.Observer]
}

func newHistogramVec(opts prometheus.HistogramOpts, labels []string) *histogramVec {
	v := &histogramVec{HistogramVec: prometheus.NewHistogramVec(opts, labels)}
	v.children.with = v.HistogramVec.WithLabelValues
	return v
}

// WithLabelValues is the vector's, as counterVec's.
func (v *histogramVec) WithLabelValues(lvs ...string) prometheus.Observer {
	return v.children.get(lvs)
}

// A child's key is its label values joined with labelSep, a byte that
// UTF-8 never has: values the vector accepts cannot run into each other,
// and values with the byte in them are refused (never remembered).
const labelSep = 0xff

// maxKey bounds the key of a child looked up without allocating; longer
// label values are asked of the vector every time.
const maxKey = 256

// labelCache remembers the children a vector handed out, by label values,
// as sync.Map does but typed (a key boxed in an interface would allocate):
// a read-only map read without a lock, and the children added since under
// a mutex, merged into a new read-only map once they were looked up there
// as many times as there are children, so the copy is amortized. Nothing
// is ever removed: the gateway never deletes a series either, so this
// holds what the vector holds.
type labelCache[M any] struct {
	with   func(...string) M // the vector's WithLabelValues
	read   atomic.Pointer[map[string]M]
	mu     sync.Mutex
	dirty  map[string]M // children not yet in read
	misses int          // lookups that went past read since it was made
}

func (c *labelCache[M]) get(lvs []string) M {
	var buf [maxKey]byte
	k := buf[:0]
	for i, v := range lvs {
		if i > 0 {
			k = append(k, labelSep)
		}
		k = append(k, v...)
	}
	if len(k) > maxKey {
		return c.with(slices.Clone(lvs)...)
	}
	if r := c.read.Load(); r != nil {
		if m, ok := (*r)[string(k)]; ok {
			return m
		}
	}
	return c.slow(string(k), lvs)
}

// slow finds or makes the child of k past the read-only map. A value the
// vector refuses panics in c.with, and nothing is remembered.
func (c *labelCache[M]) slow(k string, lvs []string) M {
	c.mu.Lock()
	defer c.mu.Unlock()
	read := c.read.Load()
	if read != nil {
		if m, ok := (*read)[k]; ok {
			return m
		}
	}
	m, ok := c.dirty[k]
	if !ok {
		m = c.with(slices.Clone(lvs)...) // a copy: the vector may keep it
		if c.dirty == nil {
			c.dirty = map[string]M{}
		}
		c.dirty[k] = m
	}
	c.misses++
	if n := len(c.dirty) + mapLen(read); c.misses >= n {
		merged := make(map[string]M, n)
		if read != nil {
			maps.Copy(merged, *read)
		}
		maps.Copy(merged, c.dirty)
		c.read.Store(&merged)
		c.dirty, c.misses = nil, 0
	}
	return m
}

func mapLen[M any](m *map[string]M) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
