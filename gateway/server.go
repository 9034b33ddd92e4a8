// Package gateway is mogate's HTTP side: the Gin engine, API keys, rate
// limits, the verification API (native and Contiguity-compatible), provider
// webhooks, health and metrics. It wires config, adapters, pool and matcher.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-redis/redis_rate/v10"
	"github.com/mogate/mogate/adapters"
	"github.com/mogate/mogate/adapters/registry"
	"github.com/mogate/mogate/config"
	"github.com/mogate/mogate/matcher"
	"github.com/mogate/mogate/matcher/redisstore"
	"github.com/mogate/mogate/matcher/wal"
	"github.com/mogate/mogate/pool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure a Server.
type Options struct {
	Config config.Config
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// InMemory keeps sessions in memory only, for tests; otherwise they
	// are journaled under cfg.DataDir (snapshot and wal/).
	InMemory bool
	// HTTP makes the adapters' outbound calls (SNS certificates and
	// subscription confirmations); nil: a client with a 10 s timeout.
	// Events to apps never use it: they leave through the outbox's own
	// client, which enforces the egress rules of egress.go.
	HTTP *http.Client
	// Outbox tunes event delivery.
	Outbox OutboxOptions
}

// Server is a configured mogate.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	base     string
	store    matcher.Store    // where sessions live
	m        *matcher.Matcher // the store of store: memory (nil otherwise)
	pool     *pool.Pool
	adapters map[string]adapters.Adapter
	keys     keyring
	http     *http.Client
	metrics  *metrics
	outbox   *outbox
	engine   *gin.Engine

	createLimit, numberLimit, unmatchedLimit rateLimit
	unmatchedKeys                            []string // API keys told of unmatched messages
	streams                                  streamLimits

	ready    atomic.Bool
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
	ads, err := registry.Build(cfg.Providers, registry.Env{Now: o.Now, HTTP: o.HTTP})
	if err != nil {
		return nil, err
	}
	specs := make([]pool.Spec, len(cfg.Numbers))
	for i, n := range cfg.Numbers {
		specs[i] = pool.Spec{Number: n.Number, Provider: n.Provider, Countries: n.Countries, Weight: n.Weight}
	}
	p, err := pool.New(specs, pool.Options{Now: o.Now})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: o.Logger, base: cfg.BaseURL(), pool: p, adapters: ads, keys: newKeyring(cfg.APIKeys), http: o.HTTP,
		streams: newStreamLimits(cfg.Limits.StreamsPerKey),
	}
	s.limits(nil)
	s.stopping, s.stop = context.WithCancel(context.Background())
	mo := matcher.Options{
		Now: o.Now, MaxAttempts: cfg.Verification.MaxAttempts,
		CodeLength: cfg.Verification.CodeLength, Retention: cfg.Retention, OnChange: s.onChange,
		CaptureGuessesPerHour: cfg.Limits.CaptureGuessesPerSenderPerHour, EventMaxAge: o.Outbox.maxAge(),
	}
	for _, k := range cfg.APIKeys {
		if k.UnmatchedEvents && k.WebhookURL != "" && k.WebhookSecret.IsSet() {
			s.unmatchedKeys = append(s.unmatchedKeys, k.Name)
		}
	}
	switch {
	case cfg.Store == "redis":
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		rs, err := redisstore.Open(ctx, redisstore.Options{
			URL: cfg.RedisURL.Reveal(), Now: o.Now, MaxAttempts: cfg.Verification.MaxAttempts,
			CodeLength: cfg.Verification.CodeLength, Retention: cfg.Retention,
			CaptureGuessesPerHour:     cfg.Limits.CaptureGuessesPerSenderPerHour,
			UnmatchedPerSenderPerHour: cfg.Limits.UnmatchedPerSenderPerHour,
			Unsafe:                    cfg.RedisUnsafe, Logger: o.Logger,
		})
		cancel()
		if err != nil {
			return nil, err
		}
		s.store = rs
		// The create limits hold for the whole gateway; the unmatched
		// budget is the store's, counted in the same call as the match.
		s.limits(s.sharedRate())
		s.unmatchedLimit = noLimit{}
	case o.InMemory:
		s.m = matcher.New(mo)
	default:
		start := time.Now()
		s.m, err = matcher.Open(cfg.DataDir, mo, matcher.DurableOptions{WAL: wal.Options{Logger: o.Logger}})
		if err != nil {
			return nil, err
		}
		o.Logger.Info("state recovered", "data_dir", cfg.DataDir, "sessions", s.m.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	if s.m != nil {
		s.store = s.m.Store()
	}
	s.metrics = newMetrics(s.pendingTotal)
	s.outbox = newOutbox(o.Outbox, s.store, cfg.APIKeys, cfg.Events.AllowPrivateDestinations, o.Logger, o.Now, s.metrics.reg,
		func(v matcher.Session) any { return s.detail(v) })
	if s.m == nil {
		// Several replicas: final statuses are seen through their events,
		// each by the one replica that claims it first.
		s.outbox.claimed = func(ev matcher.Event) {
			if ev.Session != nil {
				s.onChange(*ev.Session)
			}
		}
	}
	s.engine = s.routes()
	return s, nil
}

// RunOutbox delivers events to apps until ctx ends; Serve runs it.
func (s *Server) RunOutbox(ctx context.Context) { s.outbox.run(ctx) }

// sharedRate is the GCRA limiter in the store's Redis (store: redis), or
// nil (store: memory).
func (s *Server) sharedRate() *redis_rate.Limiter {
	if rs, ok := s.store.(*redisstore.Store); ok {
		return redis_rate.NewLimiter(rs.Client())
	}
	return nil
}

// limits sets the rate limits: shared through rdb (store: redis), so they
// hold for the whole gateway, else in-process.
func (s *Server) limits(rdb *redis_rate.Limiter) {
	l := s.cfg.Limits
	s.createLimit = newRateLimit(l.CreatesPerKeyPerSecond, time.Second, "creates-per-key", rdb)
	s.numberLimit = newRateLimit(float64(l.CreatesPerNumberPerHour), time.Hour, "creates-per-number", rdb)
	s.unmatchedLimit = newRateLimit(float64(l.UnmatchedPerSenderPerHour), time.Hour, "unmatched-per-sender", rdb)
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

// onChange follows sessions to their final status for metrics and pool health.
func (s *Server) onChange(sess matcher.Session) {
	if !sess.Status.Final() {
		return
	}
	s.metrics.finished.WithLabelValues(sess.Status.String()).Inc()
	if sess.Status == matcher.Expired {
		s.pool.Expired(sess.To, sess.Attempts == 0, 2*s.cfg.Verification.TTL)
	}
}

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// Client IPs are only logged; signatures never depend on them. Trust
	// exactly the configured proxies (none by default).
	if err := e.SetTrustedProxies(s.cfg.TrustedProxies); err != nil {
		s.log.Error("trusted_proxies", "err", err)
	}
	e.HandleMethodNotAllowed = true
	e.Use(s.metrics.observe, s.renderErrors, s.recoverJSON)
	e.NoRoute(func(c *gin.Context) { fail(c, errorf(http.StatusNotFound, "not_found", "no such endpoint")) })
	e.NoMethod(func(c *gin.Context) {
		fail(c, errorf(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed here"))
	})

	e.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", func(c *gin.Context) {
		if !s.ready.Load() {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "not ready"})
			return
		}
		if err := s.store.Err(c.Request.Context()); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "storage failed; restart to recover"})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	})
	e.GET("/openapi.json", serveOpenAPI)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))

	e.POST("/webhooks/:provider", s.webhook)
	e.GET("/webhooks/:provider", s.webhook)

	// Hosted page and QR codes: no API key, the token (or id) is unguessable.
	e.GET("/v/:token", s.page)
	e.GET("/v/:token/events", s.pageEvents)
	e.GET("/v/:token/qr.png", s.pageQR)
	e.GET("/v1/verifications/:id/qr.png", s.getQR)

	v1 := e.Group("/v1", s.authenticate)
	v1.POST("/verifications", s.postVerification)
	v1.GET("/verifications", s.listPending)
	v1.GET("/verifications/:id", s.getVerification)
	v1.GET("/verifications/:id/events", s.getEvents)
	v1.POST("/verifications/:id/cancel", s.cancelVerification)
	v1.GET("/numbers", s.getNumbers)

	otp := e.Group("/otp/reverse", contiguityRoutes, s.authenticate)
	otp.POST("/initiate", s.contiguityInitiate)
	otp.GET("/verify/:otp_id", s.contiguityVerify)
	otp.POST("/cancel/:otp_id", s.contiguityCancel)
	return e
}

// Handler returns the HTTP handler, for tests and embedding.
func (s *Server) Handler() http.Handler { return s.engine }

// Matcher returns the session store.
func (s *Server) Matcher() *matcher.Matcher { return s.m }

// SetReady marks the server ready (/readyz).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Serve serves ln until ctx ends, then shuts down gracefully: /readyz turns
// 503, long-polls return, in-flight requests finish (up to grace).
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler: s.engine, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: maxWait + 30*time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	sweepCtx, stopSweep := context.WithCancel(context.Background())
	defer stopSweep()
	go s.store.Run(sweepCtx)
	outboxDone := make(chan struct{})
	go func() { s.outbox.run(sweepCtx); close(outboxDone) }()
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
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
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
