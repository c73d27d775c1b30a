package ingest

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	publishSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "latchkey_gateway_publish_seconds",
		Help:    "Time from publishing accepted data to JetStream's ack (or failure), by signal.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
	}, []string{"signal"})
	publishRequests = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "latchkey_gateway_publish_requests",
		Help:    "Requests per published message (a key's requests are merged while its previous message awaits the ack).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256
	})
	publishFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_gateway_publish_failures_total",
		Help: "Publishes JetStream did not acknowledge, by signal and reason (timeout, disconnected, no_stream, rejected, max_payload, canceled, other).",
	}, []string{"signal", "reason"})
	requestsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_gateway_requests_total",
		Help: "Ingest requests by transport (otlp_http, otlp_grpc, json_logs), signal and outcome (ok or the error code).",
	}, []string{"transport", "signal", "code"})
)

// Transports, the first label of latchkey_gateway_requests_total.
const (
	transportOTLPHTTP = "otlp_http"
	transportOTLPGRPC = "otlp_grpc"
	transportJSONLogs = "json_logs"
)
