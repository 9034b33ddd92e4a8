package matcher

import (
	"errors"
	"fmt"
)

// ErrInvalidRoutes is wrapped by Create when a request's routes are not a
// valid set: an unknown channel, a route without a number, the same route
// twice, or Routes[0].To other than To.
var ErrInvalidRoutes = errors.New("matcher: invalid routes")

// ValidChannel reports whether c names a channel a route can take.
func ValidChannel(c string) bool {
	return c == ChannelSMS || c == ChannelWhatsApp || c == ChannelCall
}

// MessageChannel is the channel a message came on: "" means sms.
func (m Message) MessageChannel() string {
	if m.Channel == "" {
		return ChannelSMS
	}
	return m.Channel
}

// CreateRoutes returns the routes a session made by req has: req.Routes,
// or [{sms, To}] when it has none. It fails (wrapping ErrInvalidRoutes)
// when a route has an unknown channel or no number, when a route repeats,
// or when Routes[0].To is not req.To.
func CreateRoutes(req CreateRequest) ([]Route, error) {
	if len(req.Routes) == 0 {
		return []Route{{Channel: ChannelSMS, To: req.To}}, nil
	}
	if req.Routes[0].To != req.To {
		return nil, fmt.Errorf("%w: the first route's number %q is not the session's %q", ErrInvalidRoutes, req.Routes[0].To, req.To)
	}
	out := make([]Route, 0, len(req.Routes))
	for _, r := range req.Routes {
		switch {
		case !ValidChannel(r.Channel):
			return nil, fmt.Errorf("%w: unknown channel %q", ErrInvalidRoutes, r.Channel)
		case r.To == "":
			return nil, fmt.Errorf("%w: a %s route without a number", ErrInvalidRoutes, r.Channel)
		}
		for _, o := range out {
			if o == r {
				return nil, fmt.Errorf("%w: route %s %s twice", ErrInvalidRoutes, r.Channel, r.To)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// RouteNumbers returns the distinct numbers of routes, in order: the
// numbers that index a session.
func RouteNumbers(routes []Route) []string {
	var out []string
	for _, r := range routes {
		seen := false
		for _, n := range out {
			seen = seen || n == r.To
		}
		if !seen {
			out = append(out, r.To)
		}
	}
	return out
}

// HasRoute reports whether s can be proven by a message on channel c to
// number to.
func (s *Session) HasRoute(c, to string) bool {
	for _, r := range s.Routes {
		if r.Channel == c && r.To == to {
			return true
		}
	}
	return false
}

// RoutesOrSMS returns the session's routes, or the one route {sms, To} of
// a session that has none (written before routes existed).
func (s Session) RoutesOrSMS() []Route {
	if len(s.Routes) == 0 {
		return []Route{{Channel: ChannelSMS, To: s.To}}
	}
	return s.Routes
}
