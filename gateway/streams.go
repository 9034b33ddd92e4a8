package gateway

import (
	"net/http"
	"sync"
)

// pageStreamsPerToken bounds the concurrent event streams of one hosted
// page (GET /v/{token}/events, no API key): a page open in a few tabs, not
// thousands of unauthenticated streams. Each also counts against the
// session's API key (limits.streams_per_key).
const pageStreamsPerToken = 4

// streamRetryAfter is the Retry-After, in seconds, of a 429 for too many
// concurrent streams.
const streamRetryAfter = 10

// slots counts concurrent holders per key, at most max each; max 0 is no
// limit. A reload may change max (setMax); holders stay counted.
type slots struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

func newSlots(max int) *slots { return &slots{max: max, n: map[string]int{}} }

// take holds a slot for key, or reports that key has none left. release
// gives the slot back; calling it again does nothing.
func (l *slots) take(key string) (release func(), ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.n[key] >= l.max {
		return nil, false
	}
	l.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[key]--; l.n[key] <= 0 {
				delete(l.n, key)
			}
		})
	}, true
}

// setMax sets the limit per key; holders over a lowered limit keep their
// slots, and new ones wait until they are under it.
func (l *slots) setMax(max int) {
	l.mu.Lock()
	l.max = max
	l.mu.Unlock()
}

// held returns how many slots key holds.
func (l *slots) held(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[key]
}

// streamLimits bound the requests that stay open: SSE streams and ?wait=
// long-polls.
type streamLimits struct {
	perKey  *slots // limits.streams_per_key
	perPage *slots // pageStreamsPerToken, by session
}

func newStreamLimits(perKey int) streamLimits {
	return streamLimits{perKey: newSlots(perKey), perPage: newSlots(pageStreamsPerToken)}
}

// holdStream takes the slots of one stream or long-poll: one of the API
// key's and, for a hosted page (session != ""), one of the page's. Over
// either limit it returns a 429 with Retry-After. The caller must call
// release when the request ends, however it ends.
func (s *Server) holdStream(key, session string) (release func(), err error) {
	releasePage := func() {}
	if session != "" {
		r, ok := s.streams.perPage.take(session)
		if !ok {
			return nil, tooManyStreams("too many concurrent event streams for this page; retry later")
		}
		releasePage = r
	}
	releaseKey, ok := s.streams.perKey.take(key)
	if !ok {
		releasePage()
		if session != "" {
			// A page visitor learns nothing of the key's other streams.
			return nil, tooManyStreams("too many concurrent event streams for this page; retry later")
		}
		return nil, tooManyStreams("too many concurrent event streams and long-polls for this API key; retry later")
	}
	return func() { releaseKey(); releasePage() }, nil
}

func tooManyStreams(msg string) error {
	e := errorf(http.StatusTooManyRequests, "too_many_streams", "%s", msg)
	e.RetryAfter = streamRetryAfter
	return e
}
