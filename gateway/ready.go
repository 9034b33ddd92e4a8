package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mogate/mogate/gateway/backend"
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
	}
	if err := s.store.Err(ctx); err != nil {
		if s.storeFailing.CompareAndSwap(false, true) {
			s.log.Error("not ready: storage", "err", err)
		}
		if s.selfHealing {
			// Redis: the store recovers by itself once Redis answers, or
			// Sentinel or Cluster names a primary.
			return http.StatusServiceUnavailable, "Redis unavailable, or not a primary; retrying"
		}
		return http.StatusServiceUnavailable, "storage failed; restart to recover"
	}
	if s.storeFailing.CompareAndSwap(true, false) {
		s.log.Info("storage works again")
	}
	return http.StatusOK, "ready"
}

// storeBudget bounds the storage work of one request: backend.Budget.
const storeBudget = backend.Budget

// bounded gives the request's storage work one deadline, storeBudget.
func bounded(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), storeBudget)
	defer cancel()
	c.Request = c.Request.WithContext(ctx)
	c.Next()
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
