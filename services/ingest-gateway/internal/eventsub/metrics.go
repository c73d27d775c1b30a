package eventsub

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	flushes = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_gateway_cache_flushes_total", Help: "Whole-cache flushes, by cause.",
	}, []string{"why"})
	eventsApplied = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_gateway_events_applied_total", Help: "Change events applied to the cache.",
	})
	eventLag = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_gateway_event_lag_seconds", Help: "Age of the last event applied when it was applied.",
	})
	cacheEntries = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_gateway_cache_entries", Help: "Entries in the verification cache.",
	})
	oldestEntry = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_gateway_cache_oldest_entry_seconds", Help: "Age of the oldest cache entry.",
	})
)
