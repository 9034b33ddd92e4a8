package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// readiness is what /readyz answers: 200 when the server takes traffic,
// 503 while it starts, drains or its storage fails.
func (s *Server) readiness(ctx context.Context) (code int, status string) {
	switch {
	case s.draining.Load():
		return http.StatusServiceUnavailable, "shutting down"
	case !s.ready.Load():
		return http.StatusServiceUnavailable, "not ready"
	case s.store.Err(ctx) != nil:
		return http.StatusServiceUnavailable, "storage failed; restart to recover"
	}
	return http.StatusOK, "ready"
}

// readyGauge is mogate_ready: 1 when /readyz would answer 200, read at
// scrape time.
func (s *Server) readyGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_ready", Help: "1 when /readyz answers 200, 0 while the process starts, drains (SIGTERM) or its storage fails.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if code, _ := s.readiness(ctx); code != http.StatusOK {
			return 0
		}
		return 1
	})
}
