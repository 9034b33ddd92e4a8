package gateway

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"github.com/mogate/mogate/config"
)

// streamRetryAfter is the Retry-After, in seconds, of a 429 for too many
// concurrent streams.
const streamRetryAfter = 10

// errNoSlot: the key holds as many slots as its limit allows.
var errNoSlot = errors.New("gateway: no stream slot left")

// streamSlots counts the concurrent holders of each key (an API key, a
// hosted page's session), at most max each; max 0 is no limit. A reload
// may change max (setMax); holders stay counted.
type streamSlots interface {
	// take holds a slot for key: errNoSlot when key has none left, another
	// error when the count cannot be read (the caller answers 503: fail
	// closed). release gives the slot back; calling it again does nothing.
	take(ctx context.Context, key string) (release func(), err error)
	// setMax sets the limit per key; holders over a lowered limit keep
	// their slots, and new ones wait until they are under it.
	setMax(max int)
}

// slots is streamSlots in process: one replica (store: memory).
type slots struct {
	mu  sync.Mutex
	max int
	n   map[string]int
}

var _ streamSlots = (*slots)(nil)

func newSlots(max int) *slots { return &slots{max: max, n: map[string]int{}} }

func (l *slots) take(_ context.Context, key string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.n[key] >= l.max {
		return nil, errNoSlot
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
	}, nil
}

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
// long-polls of the API, and the hosted page's streams.
type streamLimits struct {
	perKey  streamSlots // limits.streams_per_key, by API key name
	perPage streamSlots // limits.page_streams_per_session, by session id
}

// newStreamLimits counts in the shared Redis when the backend has one
// (store: redis), so that the limits hold for the whole gateway, else in
// process.
func (s *Server) newStreamLimits(l config.Limits) streamLimits {
	if sh := s.shared; sh != nil {
		return streamLimits{
			perKey:  newSharedSlots(sh.Client, sh.Prefix+"streams-per-key:", l.StreamsPerKey),
			perPage: newSharedSlots(sh.Client, sh.Prefix+"page-streams-per-session:", l.PageStreamsPerSession),
		}
	}
	return streamLimits{perKey: newSlots(l.StreamsPerKey), perPage: newSlots(l.PageStreamsPerSession)}
}

// holdKeyStream takes one of the API key's slots for an SSE stream or a
// long-poll: over limits.streams_per_key it is a 429 with Retry-After. The
// caller must call release when the request ends, however it ends.
func (s *Server) holdKeyStream(ctx context.Context, key string) (release func(), err error) {
	return s.hold(ctx, s.streams.perKey, key, "too many concurrent event streams and long-polls for this API key; retry later")
}

// holdPageStream takes one of the hosted page's slots (by session): a page
// has no API key, and its streams never count against the session's key,
// so no page visitor can use up the app's own streams.
func (s *Server) holdPageStream(ctx context.Context, session string) (release func(), err error) {
	return s.hold(ctx, s.streams.perPage, session, "too many concurrent event streams for this page; retry later")
}

func (s *Server) hold(ctx context.Context, l streamSlots, key, msg string) (func(), error) {
	release, err := l.take(ctx, key)
	if errors.Is(err, errNoSlot) {
		e := errorf(http.StatusTooManyRequests, "too_many_streams", "%s", msg)
		e.RetryAfter = streamRetryAfter
		return nil, e
	}
	if err != nil {
		return nil, s.storeErr("stream slots", err)
	}
	return release, nil
}
