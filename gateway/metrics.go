package gateway

import (
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus series (docs/operations.md lists
// them). A scrape costs O(numbers + events held), never O(sessions): every
// gauge reads a counter or walks the pool.
type metrics struct {
	reg      *prometheus.Registry
	webhooks *prometheus.CounterVec
	messages *prometheus.CounterVec
	created  *prometheus.CounterVec
	finished *prometheus.CounterVec
	funnel   *prometheus.CounterVec   // per number and provider entry
	verify   *prometheus.HistogramVec // time to verify, per provider entry
	requests *prometheus.HistogramVec
	limited  *prometheus.CounterVec
	shed     *prometheus.CounterVec // connections closed at limits.max_connections
	// reloadOK and reloadAt are the last configuration load's result (1
	// applied, 0 refused: the running configuration is kept) and time.
	reloadOK, reloadAt prometheus.Gauge
}

func newMetrics(version string, pending func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_webhooks_total", Help: "Provider webhook requests by provider entry and result (accepted, handshake, unauthenticated, malformed, too_large, error).",
		}, []string{"provider", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_messages_total", Help: "Inbound messages by provider entry and outcome (verified, attempt, failed, unmatched, part, duplicate; wrong_provider, unknown_number, wrong_channel, sender_hidden, stale and caller_unattested change nothing).",
		}, []string{"provider", "outcome", "channel"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_verifications_created_total", Help: "Verifications created, by API.",
		}, []string{"api"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_verifications_finished_total", Help: "Verifications that reached a final status, by status and channel (of the route that verified; of the first route otherwise).",
		}, []string{"status", "channel"}),
		funnel: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_number_verifications_total", Help: "Verification funnel per receiving number (E.164), its provider entry and channel: created (a session of one route), offered (each route of a session of several), verified (only on the route that verified), expired, failed, cancelled (on each route).",
		}, []string{"number", "provider", "step", "channel"}),
		verify: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mogate_time_to_verify_seconds", Help: "From create to verified, per provider entry of the receiving number.",
			Buckets: []float64{5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800},
		}, []string{"provider"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mogate_http_request_duration_seconds", Help: "HTTP request latency by route and status; SSE streams and ?wait long-polls are left out.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 30},
		}, []string{"route", "code"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_rate_limited_total", Help: "Requests refused with 429 (rate limits and stream limits), by route.",
		}, []string{"route"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mogate_config_reload_success", Help: "1 when the last configuration load (the start, then every SIGHUP) was applied, 0 when it was refused and the running configuration kept.",
		}),
		reloadAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mogate_config_reload_timestamp_seconds", Help: "Unix time of the last configuration load (the start, then every SIGHUP), applied or refused.",
		}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mogate_build_info", Help: "Always 1; the labels say which build runs."}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(m.webhooks, m.messages, m.created, m.finished, m.funnel, m.verify, m.requests, m.limited, m.reloadOK, m.reloadAt, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mogate_pending_verifications",
			Help: "Pending verifications of the whole deployment, a session counted once per number it has a route on: with store: redis every replica reports the same total, so aggregate with max(), never sum()."}, pending))
	return m
}

// reloaded records the result of a configuration load at t.
func (m *metrics) reloaded(t time.Time, ok bool) {
	v := 0.0
	if ok {
		v = 1
	}
	m.reloadOK.Set(v)
	m.reloadAt.Set(float64(t.UnixNano()) / 1e9)
}

// streaming reports whether a request stays open for as long as a session
// may: SSE streams and ?wait long-polls, whose duration is not latency.
func streaming(c *gin.Context) bool {
	switch c.FullPath() {
	case "/v1/verifications/:id/events", "/v/:token/events":
		return true
	case "/v1/verifications/:id":
		return c.Query("wait") != ""
	}
	return false
}

// statusCodes are the decimal HTTP status codes, so that labelling a
// request's latency does not format (and allocate) its status each time.
var statusCodes = func() (codes [600]string) {
	for i := range codes {
		codes[i] = strconv.Itoa(i)
	}
	return codes
}()

// statusCode is strconv.Itoa(status).
func statusCode(status int) string {
	if status >= 0 && status < len(statusCodes) {
		return statusCodes[status]
	}
	return strconv.Itoa(status)
}

// probes are the routes a load balancer or Prometheus polls: their access
// lines are at debug level, so they do not drown the others.
var probes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// observe writes the access line of every request and records its latency
// by route template (never the raw path, which holds ids). The client IP is
// the peer's, or X-Forwarded-For's when the peer is a trusted proxy.
func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	took := time.Since(start)
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	if status == 429 {
		s.metrics.limited.WithLabelValues(route).Inc()
	}
	if !streaming(c) {
		s.metrics.requests.WithLabelValues(route, statusCode(status)).Observe(took.Seconds())
	}
	level := slog.LevelInfo
	if probes[route] && status < 500 {
		level = slog.LevelDebug
	}
	if !s.log.Enabled(c.Request.Context(), level) {
		return // LogAttrs would drop the line too, after its attributes were built (the client IP parsed)
	}
	s.log.LogAttrs(c.Request.Context(), level, "request",
		slog.String("method", c.Request.Method), slog.String("route", route), slog.Int("status", status),
		slog.Float64("duration_ms", float64(took.Microseconds())/1000), slog.String("client_ip", c.ClientIP()),
		slog.Int("bytes", max(0, c.Writer.Size())))
}

// numberHealth is mogate_number_breaker_state, read from the pool in force
// at scrape time: one series per number, O(numbers).
type numberHealth struct {
	s    *Server
	desc *prometheus.Desc
}

func newNumberHealth(s *Server) numberHealth {
	return numberHealth{s: s, desc: prometheus.NewDesc("mogate_number_breaker_state",
		"Health breaker of each receiving number: 0 healthy (closed), 1 probing (half-open), 2 unhealthy (open).",
		[]string{"number", "provider"}, nil)}
}

var healthValue = map[string]float64{"healthy": 0, "probing": 1, "unhealthy": 2}

func (c numberHealth) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c numberHealth) Collect(ch chan<- prometheus.Metric) {
	for _, n := range c.s.live().pool.Numbers() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, healthValue[n.Health()], n.Number, n.Provider)
	}
}
