// Package usage keeps keys' last_used_at current without a database write per
// verification: uses are gathered in memory and written in one statement per interval.
package usage

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Writer stores a batch of last-use times.
type Writer func(ctx context.Context, ids []string, at []time.Time) error

// Tracker gathers key uses.
type Tracker struct {
	write    Writer
	log      *zap.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]time.Time
}

// New returns a tracker flushing every interval.
func New(write Writer, interval time.Duration, log *zap.Logger) *Tracker {
	return &Tracker{write: write, log: log, interval: interval, pending: map[string]time.Time{}}
}

// Used records that key id was used now.
func (t *Tracker) Used(id string) {
	now := time.Now()
	t.mu.Lock()
	t.pending[id] = now
	t.mu.Unlock()
}

// Flush writes what has been gathered.
func (t *Tracker) Flush(ctx context.Context) error {
	t.mu.Lock()
	batch := t.pending
	t.pending = make(map[string]time.Time, len(batch))
	t.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ids := make([]string, 0, len(batch))
	ats := make([]time.Time, 0, len(batch))
	for id, at := range batch {
		ids = append(ids, id)
		ats = append(ats, at)
	}
	if err := t.write(ctx, ids, ats); err != nil {
		// Put the batch back (newer uses win) so a database blip loses nothing.
		t.mu.Lock()
		for i, id := range ids {
			if cur, ok := t.pending[id]; !ok || cur.Before(ats[i]) {
				t.pending[id] = ats[i]
			}
		}
		t.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes every interval until ctx ends, then once more.
func (t *Tracker) Run(ctx context.Context) error {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := t.Flush(fctx); err != nil {
				t.log.Warn("usage: final flush failed", zap.Error(err))
			}
			return nil
		case <-tick.C:
			if err := t.Flush(ctx); err != nil && ctx.Err() == nil {
				t.log.Warn("usage: flush failed; will retry", zap.Error(err))
			}
		}
	}
}
