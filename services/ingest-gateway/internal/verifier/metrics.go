package verifier

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/latchkey/latchkey/pkg/verdict"
)

var (
	cacheHits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_gateway_cache_hits_total", Help: "Verifications answered from the local cache.",
	})
	cacheMisses = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_gateway_cache_misses_total", Help: "Verifications that needed the keys service.",
	})
	verifySeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name: "latchkey_gateway_verify_rpc_seconds", Help: "VerifyKey calls to the keys service.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2},
	})
	outcomes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_gateway_verifications_total", Help: "Verification outcomes by code.",
	}, []string{"code"})
	// Resolved once: a label lookup per request would cost more than the verification.
	outcomeCounters = map[verdict.Code]prometheus.Counter{}
)

func init() {
	for _, c := range []verdict.Code{
		verdict.OK, verdict.Malformed, verdict.NotFound, verdict.Revoked, verdict.Expired,
		verdict.AccountSuspended, verdict.InsufficientCapability, verdict.OriginNotAllowed,
		"ip_limited", "unavailable",
	} {
		outcomeCounters[c] = outcomes.WithLabelValues(string(c))
	}
}

func observe(code verdict.Code) {
	if c, ok := outcomeCounters[code]; ok {
		c.Inc()
	}
}
