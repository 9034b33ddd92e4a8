package pool

import (
	"sync"
	"time"
)

// activity counts a number's sessions in the last 24 hours, in hourly
// buckets: reading it costs O(24), whatever the traffic.
type activity struct {
	mu      sync.Mutex
	buckets [24]bucket
}

type bucket struct {
	hour                       int64 // unix hour the counts belong to
	created, verified, expired int
}

// Activity is what happened on a number in the last 24 hours.
type Activity struct {
	Created  int `json:"created"`
	Verified int `json:"verified"`
	Expired  int `json:"expired"`
}

func (a *activity) add(now time.Time, f func(b *bucket)) {
	h := now.Unix() / 3600
	a.mu.Lock()
	defer a.mu.Unlock()
	b := &a.buckets[h%24]
	if b.hour != h {
		*b = bucket{hour: h}
	}
	f(b)
}

// last24h sums the buckets of the current hour and the 23 before it.
func (a *activity) last24h(now time.Time) Activity {
	h := now.Unix() / 3600
	a.mu.Lock()
	defer a.mu.Unlock()
	var out Activity
	for _, b := range a.buckets {
		if b.hour > h-24 && b.hour <= h {
			out.Created += b.created
			out.Verified += b.verified
			out.Expired += b.expired
		}
	}
	return out
}
