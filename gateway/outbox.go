package gateway

import (
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// The outbox tells apps about final statuses (verification.verified,
// .expired, .failed, .cancelled). Events are not stored separately: each is
// derived from a session's durable final status, and the session's
// Notified state — changed only by journaled records — says whether it was
// delivered. After a restart every finished, undelivered session of the last
// MaxAge is due again, so a crash neither loses nor invents an event; the
// event id is derived from the session, so a receiver can drop repeats.

// OutboxOptions tune delivery.
type OutboxOptions struct {
	Workers   int           // concurrent deliveries; 4 when 0
	BaseDelay time.Duration // first retry after about this; 1s when 0 (jittered ±20%)
	MaxDelay  time.Duration // retries back off up to this; 1h when 0
	MaxAge    time.Duration // give up (dead) this long after the status; 24h when 0
	Timeout   time.Duration // per delivery; 10s when 0
}

func (o *OutboxOptions) defaults() {
	if o.Workers == 0 {
		o.Workers = 4
	}
	if o.BaseDelay == 0 {
		o.BaseDelay = time.Second
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = time.Hour
	}
	if o.MaxAge == 0 {
		o.MaxAge = 24 * time.Hour
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
}

type outbox struct {
	opt          OutboxOptions
	m            *matcher.Matcher
	keys         map[string]*config.APIKey
	client       *http.Client
	allowPrivate bool
	log          *slog.Logger
	now          func() time.Time
	base         func(matcher.Session) any // the event's data: the API's view of the session

	delivered, attempts, dead prometheus.Counter

	mu       sync.Mutex
	queue    deliveryHeap
	queued   map[string]bool
	wake     chan struct{}
	breakers map[string]*gobreaker.CircuitBreaker[struct{}]
}

// delivery is one event on its way: a session's final status, or an
// unmatched message for one API key.
type delivery struct {
	session   matcher.Session
	unmatched *matcher.UnmatchedEvent
	attempt   int
	next      time.Time
}

func (d *delivery) key() string {
	if d.unmatched != nil {
		return d.unmatched.ID
	}
	return d.session.ID
}

// since is when the event came to be: its age decides when it is dead.
func (d *delivery) since() time.Time {
	if d.unmatched != nil {
		return d.unmatched.At
	}
	return d.session.FinishedAt
}

func newOutbox(opt OutboxOptions, m *matcher.Matcher, keys []config.APIKey, allowPrivate bool, log *slog.Logger, now func() time.Time, reg prometheus.Registerer, data func(matcher.Session) any) *outbox {
	opt.defaults()
	o := &outbox{
		opt: opt, m: m, keys: map[string]*config.APIKey{}, client: newEgressClient(allowPrivate), allowPrivate: allowPrivate,
		log: log, now: now, base: data,
		queued: map[string]bool{}, wake: make(chan struct{}, 1), breakers: map[string]*gobreaker.CircuitBreaker[struct{}]{},
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_events_delivered_total", Help: "Events accepted by the app."}),
		attempts:  prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_event_attempts_failed_total", Help: "Event deliveries that failed and will be retried."}),
		dead:      prometheus.NewCounter(prometheus.CounterOpts{Name: "mogate_events_dead_total", Help: "Events given up on after their maximum age."}),
	}
	for i := range keys {
		o.keys[keys[i].Name] = &keys[i]
	}
	reg.MustRegister(o.delivered, o.attempts, o.dead)
	return o
}

// enqueue schedules the event of a session that reached a final status.
func (o *outbox) enqueue(s matcher.Session) {
	if !s.Status.Final() || s.Notified != matcher.NotNotified || o.destination(&delivery{session: s}) == "" {
		return
	}
	o.push(&delivery{session: s, next: o.now()})
}

// enqueueUnmatched schedules a message.unmatched event.
func (o *outbox) enqueueUnmatched(e matcher.UnmatchedEvent) {
	o.push(&delivery{unmatched: &e, next: o.now()})
}

func (o *outbox) push(d *delivery) {
	o.mu.Lock()
	if !o.queued[d.key()] {
		o.queued[d.key()] = true
		heap.Push(&o.queue, d)
	}
	o.mu.Unlock()
	o.kick()
}

func (o *outbox) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// destination is the session's callback_url, else its API key's webhook_url.
func (o *outbox) destination(d *delivery) string {
	key := d.session.Key
	if d.unmatched != nil {
		key = d.unmatched.Key
	} else if d.session.Callback != "" {
		return d.session.Callback
	}
	if k := o.keys[key]; k != nil {
		return k.WebhookURL
	}
	return ""
}

// markDone records the outcome of a delivery.
func (o *outbox) markDone(d *delivery, dead bool) error {
	if d.unmatched != nil {
		return o.m.MarkUnmatchedDone(d.unmatched.ID, dead)
	}
	return o.m.MarkNotified(d.session.ID, dead)
}

// run delivers until ctx ends; it first queues what a restart left undelivered.
func (o *outbox) run(ctx context.Context) {
	for _, s := range o.m.Unnotified(o.now().Add(-o.opt.MaxAge)) {
		o.enqueue(s)
	}
	for _, e := range o.m.PendingUnmatched() {
		o.enqueueUnmatched(e)
	}
	work := make(chan *delivery)
	var wg sync.WaitGroup
	for range o.opt.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range work {
				o.attempt(ctx, d)
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	for {
		o.mu.Lock()
		var due *delivery
		wait := time.Hour
		if len(o.queue) > 0 {
			if d := o.queue[0].next.Sub(o.now()); d <= 0 {
				due = heap.Pop(&o.queue).(*delivery)
			} else {
				wait = d
			}
		}
		o.mu.Unlock()
		if due != nil {
			select {
			case work <- due:
			case <-ctx.Done():
				return
			}
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-o.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// attempt delivers once and records or reschedules the outcome.
func (o *outbox) attempt(ctx context.Context, d *delivery) {
	dest := o.destination(d)
	req, err := o.request(ctx, d, dest)
	if err == nil {
		err = checkDestination(dest, o.allowPrivate)
	}
	if err == nil {
		err = o.send(req)
	}
	switch {
	case err == nil:
		if err := o.markDone(d, false); err != nil {
			o.log.Error("event delivered but not recorded; it will be sent again", "event", d.key(), "err", err)
		}
		o.delivered.Inc()
		o.done(d.key())
		return
	case errors.Is(err, errNoEvent):
		o.done(d.key())
		return
	}
	if errors.Is(err, errRefusedDestination) || o.now().Sub(d.since()) >= o.opt.MaxAge {
		o.dead.Inc()
		o.log.Error("event dead: not delivered", "event", d.key(), "destination_host", hostOf(dest), "attempts", d.attempt+1, "err", err)
		if err := o.markDone(d, true); err != nil {
			o.log.Error("could not record a dead event", "event", d.key(), "err", err)
		}
		o.done(d.key())
		return
	}
	if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
		d.attempt++
		o.attempts.Inc()
		o.log.Warn("event delivery failed; will retry", "event", d.key(), "destination_host", hostOf(dest), "attempt", d.attempt, "err", err)
	}
	d.next = o.now().Add(o.backoff(d.attempt))
	o.mu.Lock()
	heap.Push(&o.queue, d)
	o.mu.Unlock()
	o.kick()
}

func (o *outbox) done(id string) {
	o.mu.Lock()
	delete(o.queued, id)
	o.mu.Unlock()
}

// backoff is BaseDelay·2^(attempt-1), capped at MaxDelay, ±20% jitter;
// attempt 0 (a breaker that was open) waits BaseDelay.
func (o *outbox) backoff(attempt int) time.Duration {
	d := o.opt.BaseDelay
	for i := 1; i < attempt && d < o.opt.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, o.opt.MaxDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// send posts req through its destination host's circuit breaker: a dead
// endpoint trips its own breaker and stops costing the others anything.
func (o *outbox) send(req *http.Request) error {
	host := req.URL.Host
	o.mu.Lock()
	cb := o.breakers[host]
	if cb == nil {
		cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
			Name: host, MaxRequests: 1, Timeout: 30 * time.Second,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 5 },
		})
		o.breakers[host] = cb
	}
	o.mu.Unlock()
	_, err := cb.Execute(func() (struct{}, error) {
		resp, err := o.client.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		switch {
		case resp.StatusCode/100 == 3:
			return struct{}{}, fmt.Errorf("receiver answered %d; redirects are not followed", resp.StatusCode)
		case resp.StatusCode/100 != 2:
			return struct{}{}, fmt.Errorf("receiver answered %d", resp.StatusCode)
		}
		return struct{}{}, nil
	})
	return err
}

var errNoEvent = errors.New("gateway: nothing to deliver")

// EventID is the deterministic id of a session's final-status event.
func EventID(sessionID string, status matcher.Status) string {
	sum := sha256.Sum256([]byte(sessionID + "|" + status.String()))
	return "evt_" + hex.EncodeToString(sum[:12])
}

func (o *outbox) request(ctx context.Context, d *delivery, dest string) (*http.Request, error) {
	s := d.session
	keyName := s.Key
	if d.unmatched != nil {
		keyName = d.unmatched.Key
	}
	k := o.keys[keyName]
	if k == nil || !k.WebhookSecret.IsSet() {
		o.log.Warn("no webhook_secret for the API key: event not sent", "event", d.key(), "key", keyName)
		return nil, errNoEvent
	}
	now := o.now()
	id := EventID(s.ID, s.Status)
	var body []byte
	var err error
	h := http.Header{"Content-Type": {"application/json"}, "User-Agent": {"mogate"}}
	switch {
	case d.unmatched != nil:
		u := d.unmatched
		id = u.ID
		body, err = json.Marshal(map[string]any{
			"type": "message.unmatched", "timestamp": now.UTC().Format(time.RFC3339),
			"data": map[string]any{"provider": u.Message.Provider, "message_id": u.Message.MessageID, "from": u.Message.From,
				"to": u.Message.To, "text": u.Message.Text, "received_at": u.At},
		})
	case s.API == "contiguity":
		if s.Status != matcher.Verified {
			return nil, errNoEvent // Contiguity has only the success event
		}
		body, err = json.Marshal(map[string]any{
			"id": id, "type": "otp.reverse.verified", "timestamp": now.Unix(), "api_version": contiguityAPIVersion,
			"data": map[string]any{"otp_id": s.ID, "number": s.Number, "status": "verified"},
		})
		h.Set("Contiguity-Signature", ContiguitySignature(k.WebhookSecret.Reveal(), now, body))
	default:
		body, err = json.Marshal(map[string]any{
			"type": "verification." + s.Status.String(), "timestamp": now.UTC().Format(time.RFC3339), "data": o.base(s),
		})
	}
	if h.Get("Contiguity-Signature") == "" {
		ts := strconv.FormatInt(now.Unix(), 10)
		sig, serr := StandardSignature(k.WebhookSecret.Reveal(), id, ts, body)
		if serr != nil {
			o.log.Error("webhook_secret is not whsec_<base64>: event not sent", "key", keyName)
			return nil, errNoEvent
		}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+sig)
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.opt.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dest, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: %v", errRefusedDestination, err)
	}
	req.Header = h
	context.AfterFunc(req.Context(), cancel)
	return req, nil
}

// StandardSignature is the Standard Webhooks v1 signature: Base64
// HMAC-SHA256, keyed with the Base64-decoded part of a whsec_ secret, of
// id + "." + timestamp + "." + body.
func StandardSignature(secret, id, timestamp string, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + timestamp + "."))
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// ContiguitySignature is Contiguity's header value: t=<unix>,v1=<hex
// HMAC-SHA256 of "t.body">, keyed with the whsec_ secret as given.
func ContiguitySignature(secret string, now time.Time, body []byte) string {
	t := strconv.FormatInt(now.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(t + "."))
	m.Write(body)
	return "t=" + t + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Host
}

type deliveryHeap []*delivery

func (h deliveryHeap) Len() int           { return len(h) }
func (h deliveryHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h deliveryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deliveryHeap) Push(x any)        { *h = append(*h, x.(*delivery)) }
func (h *deliveryHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}
