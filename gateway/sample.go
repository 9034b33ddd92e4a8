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

	mu   sync.Mutex
	keys map[string]*sampled
}

type sampled struct {
	last       time.Time
	suppressed int
	timer      *time.Timer
}

func newLogSampler(every time.Duration, flush func(key string, suppressed int)) *logSampler {
	return &logSampler{every: every, flush: flush, keys: map[string]*sampled{}}
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
	now, every := time.Now(), l.every
	if next := st.last.Add(every); now.Before(next) {
		st.suppressed++
		if st.timer == nil {
			st.timer = time.AfterFunc(next.Sub(now), func() { l.flushKey(key) })
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

// flushKey reports the lines of key suppressed in the interval that just
// ended; the report counts as the interval's line.
func (l *logSampler) flushKey(key string) {
	l.mu.Lock()
	st := l.keys[key]
	n := st.suppressed
	st.suppressed, st.timer, st.last = 0, nil, time.Now()
	l.mu.Unlock()
	if n > 0 {
		l.flush(key, n)
	}
}
