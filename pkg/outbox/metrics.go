package outbox

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	setAsideTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_outbox_set_aside_total",
		Help: "Outbox events set aside unpublished, by reason: invalid_subject, refused (JetStream will never take it), retries_exhausted (kept failing while later events went through). Alert on any.",
	}, []string{"reason"})

	// running holds every relay whose Run is going (*Relay → struct{}).
	running sync.Map

	_ = promauto.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "latchkey_outbox_oldest_pending_seconds",
		Help: "Age of the oldest outbox event not yet published, across this process's relays; 0 when none. Growing means the relay is stuck.",
	}, func() float64 {
		var oldest float64
		running.Range(func(k, _ any) bool {
			oldest = max(oldest, k.(*Relay).pendingAge().Seconds())
			return true
		})
		return oldest
	})
)
