package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mogate/mogate/matcher/redisstore"
)

// clockSkew is mogate_clock_skew_seconds: how far this process's clock is
// ahead of Redis's TIME, as the store last measured it.
func clockSkew(rs *redisstore.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mogate_clock_skew_seconds",
		Help: "How far this process's clock is ahead of Redis's TIME (negative: behind), measured every 10 s; timestamps, expiry and leases follow Redis.",
	}, func() float64 { return rs.ClockSkew().Seconds() })
}
