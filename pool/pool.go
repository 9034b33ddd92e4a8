// Package pool is the inventory of receiving numbers and the policy that
// assigns one to each verification (docs/configuration.md, "Number pool").
//
// Order: a pinned number; else the numbers serving the sender's country;
// else the "*" numbers. Drained numbers (weight 0) take no new sessions, not
// even pinned ones; sessions already on them still verify. Numbers whose
// health breaker is open are skipped (unless every candidate is open). Among
// the rest, weighted rendezvous hashing on the sender picks one, so a
// returning user gets the same number on every replica without shared state.
//
// Every number serves channels (sms, whatsapp, call); a session's route on
// a channel is chosen by the same rules among the numbers that serve it.
package pool

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/sony/gobreaker/v2"
)

// Spec describes one pool number.
type Spec struct {
	Number    string   // E.164
	Provider  string   // provider entry name
	Countries []string // ISO 3166 alpha-2, or "*"; empty: the number's own country
	Weight    float64  // share of new sessions; 0 drains the number
	Channels  []string // channels the number serves; empty: sms
	NumberID  string   // the provider's id of the number (Meta's phone_number_id), or ""
}

// ChannelSMS is the channel of a number whose Spec lists none.
const ChannelSMS = "sms"

// Number is a pool number with its health.
type Number struct {
	Number    string
	Provider  string
	Region    string // the number's own country
	Countries []string
	// Zone is the calling code served when no countries are configured: a
	// number serves every sender of its numbering plan (+1 US serves Canada,
	// +44 GB serves Jersey), since texting within it is domestic.
	Zone   int
	Any    bool
	Weight float64
	// Channels the number serves (never empty), and the provider's id of
	// the number when its payloads name it so.
	Channels []string
	NumberID string
	breaker  *gobreaker.CircuitBreaker[struct{}]
	seen     activity
	now      func() time.Time
}

// Last24h returns the sessions created on the number, and those verified
// and expired, in the last 24 hours (hourly buckets: the oldest hour is
// dropped whole).
func (n *Number) Last24h() Activity { return n.seen.last24h(n.now()) }

// Health is the breaker state: "healthy", "probing" or "unhealthy".
func (n *Number) Health() string { return health(n.breaker.State()) }

func health(s gobreaker.State) string {
	switch s {
	case gobreaker.StateOpen:
		return "unhealthy"
	case gobreaker.StateHalfOpen:
		return "probing"
	}
	return "healthy"
}

// Serves reports whether the number serves channel.
func (n *Number) Serves(channel string) bool { return slices.Contains(n.Channels, channel) }

// Errors of the pool.
var (
	ErrNotInPool = errors.New("pool: number is not in the pool")
	ErrNoNumber  = errors.New("pool: no number serves that country")
	// ErrDrained is returned for a pinned number of weight 0; it wraps
	// ErrNoNumber, so callers that handle "no number" refuse it the same way.
	ErrDrained   = fmt.Errorf("pool: number is drained (weight 0): %w", ErrNoNumber)
	ErrBadNumber = errors.New("pool: not a possible E.164 phone number")
	// ErrNoChannel is returned when no number serves the channel for that
	// sender (or a pinned number does not serve it): the client asked for
	// a channel this deployment cannot offer it (422 channel_unavailable).
	// It wraps ErrNoNumber.
	ErrNoChannel = fmt.Errorf("pool: no number serves that channel for that sender: %w", ErrNoNumber)
	// ErrBusy: every number that would serve the route already carries one
	// of the sender's pending sessions that it must not share (a call).
	ErrBusy       = fmt.Errorf("pool: every number that serves that channel for that sender is taken by another of its pending verifications: %w", ErrNoChannel)
	errNoActivity = errors.New("pool: session expired without any inbound message")
)

// Options tune health tracking.
type Options struct {
	// TripAfter consecutive silent expiries open a number's breaker; 5 when 0.
	TripAfter uint32
	// OpenFor is how long a tripped number is skipped before it is probed again; 10m when 0.
	OpenFor time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OnHealth, when set, is called when a number's breaker changes state
	// (health "healthy", "probing" or "unhealthy"). It must not block.
	OnHealth func(number, from, to string)
}

// Pool assigns numbers. It is safe for concurrent use.
type Pool struct {
	numbers      []*Number
	byNumber     map[string]*Number
	now          func() time.Time
	opt          Options
	lastVerified *atomic.Int64 // unix ns of the last verification on any number
}

// New builds a pool.
func New(specs []Spec, o Options) (*Pool, error) {
	if o.TripAfter == 0 {
		o.TripAfter = 5
	}
	if o.OpenFor == 0 {
		o.OpenFor = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	p := &Pool{byNumber: map[string]*Number{}, now: o.Now, opt: o, lastVerified: new(atomic.Int64)}
	var errs []error
	for _, s := range specs {
		region, err := Region(s.Number)
		if err != nil {
			errs = append(errs, errors.New("pool: "+s.Number+": "+err.Error()))
			continue
		}
		if !(s.Weight >= 0) || math.IsInf(s.Weight, 0) {
			errs = append(errs, fmt.Errorf("pool: %s: weight must be a number >= 0, got %v", s.Number, s.Weight))
			continue
		}
		n := &Number{Number: s.Number, Provider: s.Provider, Region: region, Weight: s.Weight, NumberID: s.NumberID, now: o.Now}
		n.Channels = slices.Clone(s.Channels)
		if len(n.Channels) == 0 {
			n.Channels = []string{ChannelSMS}
		}
		for _, c := range s.Countries {
			if c == "*" {
				n.Any = true
			} else {
				n.Countries = append(n.Countries, strings.ToUpper(c))
			}
		}
		if len(s.Countries) == 0 {
			n.Zone = callingCode(s.Number)
		}
		n.breaker = p.newBreaker(n)
		p.numbers = append(p.numbers, n)
		p.byNumber[n.Number] = n
	}
	return p, errors.Join(errs...)
}

// newBreaker makes the health breaker of n.
func (p *Pool) newBreaker(n *Number) *gobreaker.CircuitBreaker[struct{}] {
	number := n.Number
	trip := p.opt.TripAfter
	st := gobreaker.Settings{
		Name:        number,
		MaxRequests: 1,
		Timeout:     p.opt.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= trip },
	}
	if on := p.opt.OnHealth; on != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { on(number, health(from), health(to)) }
	}
	return gobreaker.NewCircuitBreaker[struct{}](st)
}

// Reload returns a pool of specs with p's options that keeps the health of
// the numbers p already has (their breakers and the last verification), so
// a configuration reload forgets nothing about a number it keeps.
func (p *Pool) Reload(specs []Spec) (*Pool, error) {
	q, err := New(specs, p.opt)
	if err != nil {
		return nil, err
	}
	q.lastVerified = p.lastVerified
	for _, n := range q.numbers {
		if old, ok := p.byNumber[n.Number]; ok {
			n.breaker = old.breaker
			old.seen.mu.Lock() // the last 24 h too
			n.seen.buckets = old.seen.buckets
			old.seen.mu.Unlock()
		}
	}
	return q, nil
}

// Region returns the country of an E.164 number: its region when the number
// is valid, else the main country of its calling code (test ranges such as
// +44 7700 900xxx are not "valid" but are clearly British).
func Region(e164 string) (string, error) {
	pn, err := phonenumbers.Parse(e164, "")
	if err != nil || !strings.HasPrefix(e164, "+") || !phonenumbers.IsPossibleNumber(pn) {
		return "", ErrBadNumber
	}
	if r := phonenumbers.GetRegionCodeForNumber(pn); r != "" && r != "ZZ" {
		return r, nil
	}
	if r := phonenumbers.GetRegionCodeForCountryCode(int(pn.GetCountryCode())); r != "" && r != "ZZ" {
		return r, nil
	}
	return "", ErrBadNumber
}

func callingCode(e164 string) int {
	pn, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return 0
	}
	return int(pn.GetCountryCode())
}

// National returns number in E.164 when it is a national number of the
// receiving number's country ("6505551212" to a +1 number is +16505551212);
// anything else — E.164 already, alphanumeric, not a valid number there — is
// returned unchanged.
func National(number, receiving string) string {
	if number == "" || strings.HasPrefix(number, "+") || strings.Trim(number, "0123456789 -().") != "" {
		return number
	}
	region, err := Region(receiving)
	if err != nil {
		return number
	}
	pn, err := phonenumbers.Parse(number, region)
	if err != nil || !phonenumbers.IsPossibleNumber(pn) {
		return number
	}
	return phonenumbers.Format(pn, phonenumbers.E164)
}

// Normalize turns a user-supplied phone number into E.164. Formatting
// characters are allowed; the number must carry its country code.
func Normalize(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "+") {
		return "", ErrBadNumber
	}
	pn, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsPossibleNumber(pn) {
		return "", ErrBadNumber
	}
	return phonenumbers.Format(pn, phonenumbers.E164), nil
}

// Lookup returns the pool number n.
func (p *Pool) Lookup(n string) (*Number, bool) {
	x, ok := p.byNumber[n]
	return x, ok
}

// Numbers returns the pool in configuration order.
func (p *Pool) Numbers() []*Number { return slices.Clone(p.numbers) }

// ByProvider returns the pool numbers of a provider entry.
func (p *Pool) ByProvider(provider string) []*Number {
	var out []*Number
	for _, n := range p.numbers {
		if n.Provider == provider {
			out = append(out, n)
		}
	}
	return out
}

// ByNumberID returns the pool number of provider entry provider whose
// provider id (phone_number_id) is id.
func (p *Pool) ByNumberID(provider, id string) (*Number, bool) {
	if id == "" {
		return nil, false
	}
	for _, n := range p.numbers {
		if n.Provider == provider && n.NumberID == id {
			return n, true
		}
	}
	return nil, false
}

// Assign picks the receiving number of a session that names no channel:
// AssignChannel for ChannelSMS, except that a pinned number is taken
// whatever it serves (a client that names the number chose its channel;
// sessions do not carry channels yet).
func (p *Pool) Assign(sender, pinned, country, key string) (*Number, error) {
	if pinned != "" {
		if n, ok := p.byNumber[pinned]; ok {
			return p.AssignChannel(n.Channels[0], sender, pinned, country, key)
		}
	}
	return p.AssignChannel(ChannelSMS, sender, pinned, country, key)
}

// AssignChannel picks the receiving number of a session's route on
// channel, among the numbers that serve it. sender is the expected sender
// in E.164, or "" in capture mode, where country (a hint) chooses the
// candidates and key (any per-session value) spreads sessions. When no
// number serves the channel for that sender (but one serves another
// channel, or the channel is not sms) the error is ErrNoChannel; an sms
// route with no number at all for the sender is ErrNoNumber, as it always
// was.
func (p *Pool) AssignChannel(channel, sender, pinned, country, key string) (*Number, error) {
	return p.AssignAvoiding(channel, sender, pinned, country, key, nil)
}

// AssignAvoiding is AssignChannel among the numbers busy does not name
// (nil: none is busy): a call route must not share its number with
// another pending call session of the same caller, since a call carries no
// code to tell the two apart. When every number that would serve is busy
// (or the pinned one is), the error is ErrBusy.
func (p *Pool) AssignAvoiding(channel, sender, pinned, country, key string, busy func(number string) bool) (*Number, error) {
	if busy == nil {
		busy = func(string) bool { return false }
	}
	if pinned != "" {
		n, ok := p.byNumber[pinned]
		switch {
		case !ok:
			return nil, ErrNotInPool
		case n.Weight == 0:
			return nil, ErrDrained
		case !n.Serves(channel):
			return nil, ErrNoChannel
		case busy(n.Number):
			return nil, ErrBusy
		}
		return n, nil
	}
	zone := 0
	if sender != "" {
		r, err := Region(sender)
		if err != nil {
			return nil, err
		}
		country, key, zone = r, sender, callingCode(sender)
	}
	country = strings.ToUpper(country)
	if zone == 0 && country != "" {
		zone = phonenumbers.GetCountryCodeForRegion(country)
	}
	candidates := p.candidates(channel, country, zone)
	if len(candidates) == 0 {
		if channel != ChannelSMS || len(p.candidates("", country, zone)) > 0 {
			return nil, ErrNoChannel
		}
		return nil, ErrNoNumber
	}
	free := candidates[:0:0]
	for _, n := range candidates {
		if !busy(n.Number) {
			free = append(free, n)
		}
	}
	if len(free) == 0 {
		return nil, ErrBusy
	}
	candidates = free
	healthy := candidates[:0:0]
	for _, n := range candidates {
		if n.breaker.State() != gobreaker.StateOpen {
			healthy = append(healthy, n)
		}
	}
	if len(healthy) > 0 {
		candidates = healthy
	}
	return rendezvous(candidates, key), nil
}

// candidates returns the numbers, serving channel ("" any), that take new
// sessions for the sender's country or calling code; else the "*" ones.
func (p *Pool) candidates(channel, country string, zone int) []*Number {
	var out []*Number
	for _, n := range p.numbers {
		if n.Weight > 0 && (channel == "" || n.Serves(channel)) && (country != "" && slices.Contains(n.Countries, country) || zone != 0 && n.Zone == zone) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		for _, n := range p.numbers {
			if n.Weight > 0 && (channel == "" || n.Serves(channel)) && n.Any {
				out = append(out, n)
			}
		}
	}
	return out
}

// rendezvous returns the candidate with the highest weighted score for key:
// score = -weight / ln(u), u uniform in (0,1) from hash(key, number).
func rendezvous(candidates []*Number, key string) *Number {
	var best *Number
	bestScore := math.Inf(-1)
	for _, n := range candidates {
		u := (float64(hash64(key, n.Number)>>11) + 0.5) / (1 << 53)
		score := -n.Weight / math.Log(u)
		if score > bestScore {
			best, bestScore = n, score
		}
	}
	return best
}

// hash64 is FNV-1a followed by a splitmix64 finalizer: stable across
// processes and replicas.
func hash64(a, b string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range []string{a, "\x00", b} {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// Created records a session made on number (for Last24h).
func (p *Pool) Created(number string) {
	if n, ok := p.byNumber[number]; ok {
		n.seen.add(p.now(), func(b *bucket) { b.created++ })
	}
}

// Verified records a verification on number: its breaker counts a success.
func (p *Pool) Verified(number string) {
	p.lastVerified.Store(p.now().UnixNano())
	if n, ok := p.byNumber[number]; ok {
		n.seen.add(p.now(), func(b *bucket) { b.verified++ })
		_, _ = n.breaker.Execute(func() (struct{}, error) { return struct{}{}, nil })
	}
}

// Expired records a session on number that expired (for Last24h). It counts against the
// number only when no message at all reached the session (silent) while
// another number verified something within window: then the carrier or the
// webhook of this number is the likely fault, not the user.
func (p *Pool) Expired(number string, silent bool, window time.Duration) {
	n, ok := p.byNumber[number]
	if !ok {
		return
	}
	n.seen.add(p.now(), func(b *bucket) { b.expired++ })
	if !silent {
		return
	}
	if last := p.lastVerified.Load(); last == 0 || p.now().Sub(time.Unix(0, last)) > window {
		return
	}
	_, _ = n.breaker.Execute(func() (struct{}, error) { return struct{}{}, errNoActivity })
}
