package gateway

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mogate/mogate/gateway/connlimit"
	"github.com/prometheus/client_golang/prometheus"
)

// timeouts bound each phase of a connection: reading the request's
// header, reading the whole request, writing the answer, and waiting idle
// for the next request.
type timeouts struct{ readHeader, read, write, idle time.Duration }

// publicTimeouts: writing covers the longest ?wait= long-poll; event
// streams clear their own write deadline.
var publicTimeouts = timeouts{readHeader: 10 * time.Second, read: 30 * time.Second, write: maxWait + 30*time.Second, idle: 120 * time.Second}

// adminTimeouts: a scrape is a small request with a quick answer.
var adminTimeouts = timeouts{readHeader: 5 * time.Second, read: 10 * time.Second, write: 30 * time.Second, idle: 60 * time.Second}

func (t timeouts) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler: h, ReadHeaderTimeout: t.readHeader, ReadTimeout: t.read, WriteTimeout: t.write, IdleTimeout: t.idle,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// ServeAdmin serves /metrics (AdminHandler) on ln, the admin_listen
// listener, with its own timeouts, until the returned function closes it.
func (s *Server) ServeAdmin(ln net.Listener) (stop func() error) {
	srv := adminTimeouts.server(s.admin, s.log)
	go func() { _ = srv.Serve(ln) }()
	return srv.Close
}

// capConnections wraps the public listener in limits.max_connections,
// which Reload changes for the connections accepted afterwards.
func (s *Server) capConnections(ln net.Listener, srv *http.Server) net.Listener {
	cl := connlimit.New(ln, s.live().limits.MaxConnections)
	cl.OnShed = func(evicted bool) {
		reason := "refused"
		if evicted {
			reason = "evicted"
		}
		s.metrics.shed.WithLabelValues(reason).Inc()
	}
	srv.ConnState, srv.ConnContext, srv.Handler = cl.ConnState, cl.ConnContext, cl.Handler(srv.Handler)
	s.conns.Store(cl)
	return cl
}

// connMetrics are the public listener's series: its open connections and
// the ones closed at limits.max_connections.
func (s *Server) connMetrics() []prometheus.Collector {
	s.metrics.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mogate_connections_shed_total",
		Help: "Connections closed at limits.max_connections: evicted (an idle or unfinished one made room for a new one) or refused (every open one had sent its whole request).",
	}, []string{"reason"})
	s.metrics.shed.WithLabelValues("evicted")
	s.metrics.shed.WithLabelValues("refused")
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_open_connections", Help: "Open connections on the public listener.",
	}, func() float64 {
		if cl := s.conns.Load(); cl != nil {
			return float64(cl.Open())
		}
		return 0
	})
	return []prometheus.Collector{s.metrics.shed, open}
}
