package consumer

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	storedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_audit_events_stored_total",
		Help: "Audit events stored (each once; redeliveries and duplicates are not counted).",
	})
	rejectedTotal = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_audit_events_rejected_total",
		Help: "Messages on the audit stream that are not storable events (not an AuditEvent, or no usable id); terminated, not retried.",
	})
	storeSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "latchkey_audit_store_seconds",
		Help:    "Time to store one batch of audit events, in one transaction.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})
	storeFailures = promauto.NewCounter(prometheus.CounterOpts{
		Name: "latchkey_audit_store_failures_total",
		Help: "Batches that could not be stored and were handed back for redelivery.",
	})
	pending = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "latchkey_audit_consumer_pending",
		Help: "Audit events in the stream not yet stored: undelivered plus delivered and unacknowledged.",
	})
)
