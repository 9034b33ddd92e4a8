package gateway

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	reg      *prometheus.Registry
	webhooks *prometheus.CounterVec
	messages *prometheus.CounterVec
	created  *prometheus.CounterVec
	finished *prometheus.CounterVec
	requests *prometheus.HistogramVec
}

func newMetrics(pending func() float64) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_webhooks_total", Help: "Provider webhook requests by provider entry and result.",
		}, []string{"provider", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_messages_total", Help: "Inbound messages by provider entry and outcome (verified, attempt, failed, unmatched, part, duplicate; wrong_provider and unknown_number change nothing).",
		}, []string{"provider", "outcome"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_verifications_created_total", Help: "Verifications created, by API.",
		}, []string{"api"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mogate_verifications_finished_total", Help: "Verifications that reached a final status.",
		}, []string{"status"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mogate_http_request_duration_seconds", Help: "HTTP request latency by route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 30},
		}, []string{"route", "code"}),
	}
	m.reg.MustRegister(m.webhooks, m.messages, m.created, m.finished, m.requests,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mogate_pending_verifications", Help: "Pending verifications."}, pending))
	return m
}

// observe records every request's latency by route template (never the raw
// path, which holds ids).
func (m *metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(c.Writer.Status())).Observe(time.Since(start).Seconds())
}
