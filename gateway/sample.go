package gateway

import (
	"sync"
	"time"
)

// unmatchedLogEvery is how often a provider entry's unmatched messages
// are logged at most: a flood writes one line per interval, with the count
// of the messages it did not log.
var unmatchedLogEvery = time.Second

// logSampler lets through one line per key and interval and counts the
// others; a count still held when the interval ends is handed to flush,
// so that every counted line is reported. Keys are provider entries: a
// bounded set.
type logSampler struct {
	every time.Duration
	flush func(key string, suppressed int)
	now   func() time.Time                        // time.Now
	after func(time.Duration, func()) *time.Timer // time.AfterFunc

	mu   sync.Mutex
	keys map[string]*sampled
}

type sampled struct {
	last       time.Time
	suppressed int
	timer      *time.Timer // the interval's, while it holds a count
	gen        int         // numbers the timers: a stale one finds another here
}

func newLogSampler(every time.Duration, flush func(key string, suppressed int)) *logSampler {
	return &logSampler{every: every, flush: flush, now: time.Now, after: time.AfterFunc, keys: map[string]*sampled{}}
}

// allow reports whether a line for key may be written now and, if so, how
// many lines were suppressed since the last one written.
func (l *logSampler) allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[key]
	if st == nil {
		st = &sampled{}
		l.keys[key] = st
	}
	now, every := l.now(), l.every
	if next := st.last.Add(every); now.Before(next) {
		st.suppressed++
		if st.timer == nil {
			st.gen++
			gen := st.gen
			st.timer = l.after(next.Sub(now), func() { l.flushKey(key, gen) })
		}
		return false, 0
	}
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	n := st.suppressed
	st.last, st.suppressed = now, 0
	return true, n
}

// flushKey, run by timer gen, reports the lines of key suppressed in the
// interval that just ended; the report counts as the interval's line. A
// timer that fired while allow let a line through (and stopped it too
// late) finds another timer, or none, current and does nothing: that line
// carried its count.
func (l *logSampler) flushKey(key string, gen int) {
	l.mu.Lock()
	st := l.keys[key]
	if st.timer == nil || st.gen != gen {
		l.mu.Unlock()
		return
	}
	n := st.suppressed
	st.suppressed, st.timer, st.last = 0, nil, l.now()
	l.mu.Unlock()
	if n > 0 {
		l.flush(key, n)
	}
}
