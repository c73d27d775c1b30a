package server

import (
	"context"
	"sync"
	"time"
)

// readyTTL is how long a database ping answers readiness probes.
const readyTTL = 2 * time.Second

// Readiness returns a Unit.Ready func: connected() holds now (NATS, say) and ping (the
// database) succeeded within the last two seconds. The ping's result is cached so that
// health probes do not load the database.
func Readiness(connected func() bool, ping func(context.Context) error) func() bool {
	var (
		mu      sync.Mutex
		checked time.Time
		ok      bool
	)
	return func() bool {
		if !connected() {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if time.Since(checked) < readyTTL {
			return ok
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ok = ping(ctx) == nil
		checked = time.Now()
		return ok
	}
}
