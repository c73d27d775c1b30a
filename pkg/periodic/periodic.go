// Package periodic runs a function on an interval until a context ends: the shape of every
// background job in Latchkey (pruning, sweeping, retention, gauges).
package periodic

import (
	"context"
	"time"
)

// Every calls fn each interval until ctx ends, then returns nil (a Unit worker).
func Every(ctx context.Context, interval time.Duration, fn func(context.Context)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn(ctx)
		}
	}
}

// Now calls fn at once, then as Every does.
func Now(ctx context.Context, interval time.Duration, fn func(context.Context)) error {
	fn(ctx)
	return Every(ctx, interval, fn)
}
