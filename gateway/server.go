// Package gateway is mogate's HTTP side: the Gin engine, API keys, rate
// limits, the verification API (native and Contiguity-compatible), provider
// webhooks, health and metrics. It wires config, adapters, pool and the
// outbox around a store it is given (Options.Backend): which store that is,
// and how it was opened, is the composition root's (package wire).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/gateway/backend"
	"github.com/mogate/mogate/gateway/connlimit"
	"github.com/mogate/mogate/gateway/outbox"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/pool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Options configure a Server.
type Options struct {
	Config config.Config
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// Backend is the opened store and what comes with it (wire.Open
	// builds it from Config). Required. A server New returns owns it (its
	// Close closes the store); when New fails, the caller still does.
	Backend backend.Backend
	// HTTP makes the adapters' outbound calls (SNS certificates and
	// subscription confirmations); nil: a client with a 10 s timeout.
	// Events to apps never use it: they leave through the outbox's own
	// client, which enforces the egress rules of outbox/egress.go.
	HTTP *http.Client
	// Outbox tunes event delivery.
	Outbox OutboxOptions
	// Level, when set, is the level of Logger's handler: Reload sets it
	// from log_level.
	Level *slog.LevelVar
	// Version is the build's version, for mogate_build_info.
	Version string
}

// OutboxOptions tune event delivery: see outbox.Tuning.
type OutboxOptions = outbox.Tuning

// Server is a configured mogate.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	base     string
	level    *slog.LevelVar
	store    matcher.Store // where sessions live
	adapters map[string]adapters.Adapter
	urls     map[string]*signedURL // by provider entry: the URL its last webhook was signed for
	http     *http.Client
	metrics  *metrics
	outbox   *outbox.Outbox
	engine   *gin.Engine
	admin    http.Handler // /metrics, on its own listener when admin_listen is set
	streams  streamLimits

	// shared is where limits and stream slots are counted for the whole
	// deployment (nil: in process); selfHealing and boundsGuesses are the
	// Backend's.
	shared                     *backend.Shared
	selfHealing, boundsGuesses bool
	finals                     onceGuard // at most once per final-status event: see onClaim

	// unmatchedLog samples the unmatched message lines of each entry.
	unmatchedLog *logSampler

	rt       atomic.Pointer[reloadable]         // api_keys, numbers, limits: see Reload
	conns    atomic.Pointer[connlimit.Listener] // the public listener, once Serve runs
	reloadMu sync.Mutex

	ready    atomic.Bool
	draining atomic.Bool // set by Drain: /readyz stays 503 until exit
	// storeFailing is set while /readyz finds the store failing (its
	// reason is logged once, when it starts).
	storeFailing atomic.Bool
	// now is the clock of the adapters and the outbox: the store's, or
	// Options.Now.
	now      func() time.Time
	stopping context.Context
	stop     context.CancelFunc
}

// New builds a server from a validated configuration.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg := o.Config
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	b := o.Backend
	if b.Store == nil {
		return nil, errors.New("gateway: Options.Backend has no store: open one with wire.Open")
	}
	// The adapters' and the outbox's clock: the store's when it has one
	// (store: redis, whose clock is Redis's TIME), else o.Now.
	now := o.Now
	if b.Now != nil {
		now = b.Now
	}
	ads, err := registry.Build(cfg.Providers, registry.Env{Now: now, HTTP: o.HTTP})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: o.Logger, level: o.Level, base: cfg.BaseURL(), adapters: ads, http: o.HTTP,
		store: b.Store, shared: b.Shared, selfHealing: b.SelfHealing, boundsGuesses: b.BoundsSenderGuesses,
		now: now, urls: make(map[string]*signedURL, len(ads)),
	}
	for name := range ads {
		s.urls[name] = &signedURL{}
	}
	s.unmatchedLog = newLogSampler(unmatchedLogEvery, func(provider string, n int) {
		s.log.Info("unmatched messages not logged", "provider", provider, "suppressed", n)
	})
	s.metrics = newMetrics(o.Version, s.pendingTotal)
	s.metrics.reloaded(time.Now(), true) // the configuration in force was loaded at start
	for _, c := range b.Collectors {
		if err := s.metrics.reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: the store's metrics: %w", err)
		}
	}
	p, err := pool.New(poolSpecs(cfg.Numbers), pool.Options{Now: o.Now, OnHealth: s.onHealth})
	if err != nil {
		return nil, err
	}
	s.stopping, s.stop = context.WithCancel(context.Background())
	// The create and stream limits of a shared store hold for the whole
	// gateway.
	s.rt.Store(s.newReloadable(cfg, p, nil, s.sharedRate()))
	s.streams = s.newStreamLimits(cfg.Limits)
	s.metrics.reg.MustRegister(newNumberHealth(s), s.readyGauge())
	s.metrics.reg.MustRegister(s.connMetrics()...)
	maxAge := o.Outbox.WithDefaults().MaxAge
	s.finals = s.newOnceGuard(maxAge)
	s.outbox = outbox.New(outbox.Options{
		Store: s.store, Keys: cfg.APIKeys, AllowPrivate: cfg.Events.AllowPrivateDestinations,
		Logger: o.Logger, Now: now, Registerer: s.metrics.reg,
		Data: func(v matcher.Session) any { return s.detail(v) }, OnClaim: s.onClaim(now), OnAcked: s.onAcked(), Tuning: o.Outbox,
		LogUnsent: cfg.Dev,
	})
	metricsHandler := gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.engine = s.routes(metricsHandler)
	admin := gin.New()
	admin.GET("/metrics", metricsHandler)
	s.admin = admin
	return s, nil
}

// RunOutbox delivers events to apps until ctx ends; Serve runs it.
func (s *Server) RunOutbox(ctx context.Context) { s.outbox.Run(ctx) }

// sharedRate is the Redis where rate limits are kept for the whole
// deployment (store: redis) under its prefix, or nil (one process).
func (s *Server) sharedRate() redis.UniversalClient {
	if s.shared == nil {
		return nil
	}
	return limitClient{s.shared.Client, s.shared.Prefix}
}

// pendingTotal is the pending-sessions gauge: O(numbers), never a walk
// over sessions.
func (s *Server) pendingTotal() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	byNumber, err := s.store.PendingByNumber(ctx)
	if err != nil {
		return math.NaN()
	}
	n := 0
	for _, c := range byNumber {
		n += c
	}
	return float64(n)
}

// finished follows a session to its final status for the lifecycle log,
// metrics and pool health: onClaim calls it once per final-status event.
func (s *Server) finished(sess matcher.Session) {
	if !sess.Status.Final() {
		return
	}
	rt := s.live()
	entry := entryOf(rt, sess.To)
	status := sess.Status.String()
	routes := sess.RoutesOrSMS()
	if sess.Status == matcher.Verified || sess.Via.To != "" {
		// Only the route that verified (or failed by policy) counts it.
		if sess.Via.To != "" {
			routes = []matcher.Route{sess.Via}
		}
		routes = routes[:1]
	}
	s.metrics.finished.WithLabelValues(status, routes[0].Channel).Inc()
	for _, r := range routes {
		s.metrics.funnel.WithLabelValues(r.To, entryOf(rt, r.To), status, r.Channel).Inc()
	}
	switch sess.Status {
	case matcher.Expired:
		rt.pool.Expired(sess.To, sess.Attempts == 0, 2*s.cfg.Verification.TTL)
	case matcher.Verified:
		s.metrics.verify.WithLabelValues(entryOf(rt, routes[0].To)).Observe(sess.FinishedAt.Sub(sess.CreatedAt).Seconds())
	}
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return // the line would be dropped after its attributes were built
	}
	msg := "verification " + status
	if sess.Reason == "superseded" {
		msg = "verification superseded"
	}
	s.lifecycle(msg, sess, entry)
}

// entryOf is the provider entry of a pool number, "unknown" for a number
// a reload removed from the pool.
func entryOf(rt *reloadable, number string) string {
	if n, ok := rt.pool.Lookup(number); ok {
		return n.Provider
	}
	return "unknown"
}

// lifecycle logs one step of a session: never its code, only masked
// sender numbers.
func (s *Server) lifecycle(msg string, sess matcher.Session, entry string, attrs ...any) {
	if !s.log.Enabled(context.Background(), slog.LevelInfo) {
		return // Info would drop the line, after boxing each attribute
	}
	attrs = append(attrs, "id", sess.ID, "key", sess.Key, "to", sess.To, "provider", entry)
	if sess.Number != "" {
		attrs = append(attrs, "number", maskNumber(sess.Number))
	}
	if sess.VerifiedNumber != "" && sess.VerifiedNumber != sess.Number {
		attrs = append(attrs, "verified_number", maskNumber(sess.VerifiedNumber))
	}
	if sess.Attempts > 0 {
		attrs = append(attrs, "attempts", sess.Attempts)
	}
	if sess.MessageID != "" {
		attrs = append(attrs, "message_id", sess.MessageID)
	}
	s.log.Info(msg, attrs...)
}

// onHealth logs a number's breaker changes.
func (s *Server) onHealth(number, from, to string) {
	entry := ""
	if rt := s.live(); rt != nil {
		if n, ok := rt.pool.Lookup(number); ok {
			entry = n.Provider
		}
	}
	level := slog.LevelInfo
	if to == "unhealthy" {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "number health changed", "number", number, "provider", entry, "from", from, "to", to)
}

func (s *Server) routes(metricsHandler gin.HandlerFunc) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Client IPs are only logged; signatures never depend on them. Trust
	// exactly the configured proxies (none by default), through
	// X-Forwarded-For only.
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		s.log.Error("trusted_proxies", "err", err)
	}
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	e.HandleMethodNotAllowed = true
	e.Use(s.observe, s.renderErrors, s.recoverJSON)
	e.NoRoute(func(c *gin.Context) { fail(c, errorf(http.StatusNotFound, "not_found", "no such endpoint")) })
	e.NoMethod(func(c *gin.Context) {
		fail(c, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed here"))
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", func(c *gin.Context) {
		code, status := s.readiness(c.Request.Context())
		c.JSON(code, gin.H{"status": status})
	})
	e.GET("/openapi.json", serveOpenAPI)
	if s.cfg.AdminListen == "" {
		e.GET("/metrics", metricsHandler)
	}

	e.POST("/webhooks/:provider", s.webhook)
	e.GET("/webhooks/:provider", s.webhook)

	// Hosted page and its QR code: no API key, the page token is unguessable.
	e.GET("/v/:token", bounded, s.page)
	e.GET("/v/:token/events", s.pageEvents)
	e.GET("/v/:token/qr.png", bounded, s.pageQR)

	v1 := e.Group("/v1", s.authenticate)
	v1.POST("/verifications", bounded, s.postVerification)
	v1.GET("/verifications", bounded, s.listPending)
	v1.GET("/verifications/:id", s.getVerification)
	v1.GET("/verifications/:id/events", s.getEvents)
	v1.GET("/verifications/:id/qr.png", bounded, s.getQR)
	v1.POST("/verifications/:id/cancel", bounded, s.cancelVerification)
	v1.GET("/numbers", bounded, s.getNumbers)

	otp := e.Group("/otp/reverse", contiguityRoutes, s.authenticate)
	otp.POST("/initiate", bounded, s.contiguityInitiate)
	otp.GET("/verify/:otp_id", bounded, s.contiguityVerify)
	otp.POST("/cancel/:otp_id", bounded, s.contiguityCancel)
	return e
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// AdminHandler serves /metrics, for the admin_listen listener: with
// admin_listen set, the public Handler answers /metrics 404.
func (s *Server) AdminHandler() http.Handler { return s.admin }

// SetReady marks the server ready (/readyz).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Drain turns /readyz 503 for good, while every other request is still
// served: the caller waits shutdown_delay for load balancers to notice,
// then ends Serve. Serve, even when it starts later, does not undo it.
func (s *Server) Drain() { s.draining.Store(true) }

// Serve serves ln until ctx ends, then shuts down: /readyz turns 503,
// long-polls answer the current state at once, SSE streams end, and the
// other requests in flight finish within drain; whatever is still open
// then is closed. Deliveries in flight are recorded and a final snapshot
// taken before it returns. A caller that wants /readyz seen 503 before the
// listener closes (shutdown_delay) calls Drain first and waits.
func (s *Server) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	srv := publicTimeouts.server(s.engine, s.log)
	ln = s.capConnections(ln, srv)
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go s.store.Run(sweepCtx)
	outboxDone := make(chan struct{})
	go func() { s.outbox.Run(sweepCtx); close(outboxDone) }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.SetReady(true)
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	s.SetReady(false)
	s.stop()
	s.log.Info("draining", "at_most", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		s.log.Warn("drain timed out; closing the connections still open", "err", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	stopSweep()
	<-outboxDone // deliveries in flight finish and are recorded before the log closes
	return s.Close()
}

// Close takes a final snapshot and closes the log; Serve calls it on the way
// out.
func (s *Server) Close() error { return s.store.Close() }
