// Package batch answers lookups that arrive together with one fetch: the keys service
// verifies concurrent VerifyKey calls with one Postgres query and one call to accounts
// rather than one each, and a gateway sends its concurrent cache misses to keys in one
// VerifyKeys call (docs/scale.md, "Misses").
//
// It adds no wait of its own: a lookup that finds a fetch slot free starts a fetch at
// once; only lookups that arrive while every slot is busy wait, and the next free slot
// takes all of them in one fetch. Under light load every lookup is a fetch of one key;
// under heavy load each fetch carries what arrived during the previous one.
//
// Every fetch begins after each lookup it answers was asked: a lookup never shares a fetch
// already under way, so its answer is never older than the lookup. That is what lets a
// gateway cache the answer right after it dropped the key for an event (the same rule as
// the gateway's own singleflight, docs/invalidation.md, "Races with lookups in flight").
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Fetch looks keys up at once and returns what it found by key; a key left out of the map
// was not found. An error fails every lookup of the fetch.
type Fetch[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// Group runs lookups through fetch. The zero value is not usable; see New.
type Group[K comparable, V any] struct {
	fetch   Fetch[K, V]
	slots   int
	max     int
	timeout time.Duration

	mu      sync.Mutex
	pending map[K]*call[V] // asked, and not yet taken by a fetch
	order   []K            // pending's keys, oldest first
	running int            // fetches under way
}

type call[V any] struct {
	done    chan struct{}
	waiters int // lookups sharing this call (under Group.mu)
	v       V
	found   bool
	err     error
}

// New returns a group that runs at most slots fetches at once (for a Postgres lookup, at
// most the pool's connections), each of at most max keys, each bounded by timeout
// whatever its callers' deadlines.
func New[K comparable, V any](fetch Fetch[K, V], slots, max int, timeout time.Duration) *Group[K, V] {
	if slots < 1 || max < 1 || timeout <= 0 {
		panic("batch: slots and max must be at least 1, timeout positive")
	}
	return &Group[K, V]{fetch: fetch, slots: slots, max: max, timeout: timeout, pending: map[K]*call[V]{}}
}

// Get looks k up: v and true when found, false when not. It returns ctx's error when ctx
// ends first (the fetch goes on for the others that wait on it), and the fetch's error
// when that failed. Lookups of the same key that wait together share one answer.
func (g *Group[K, V]) Get(ctx context.Context, k K) (V, bool, error) {
	g.mu.Lock()
	c, ok := g.pending[k]
	if !ok {
		c = &call[V]{done: make(chan struct{})}
		g.pending[k] = c
		g.order = append(g.order, k)
	}
	c.waiters++
	if g.running < g.slots {
		g.running++
		go g.run()
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.v, c.found, c.err
	case <-ctx.Done():
		var zero V
		return zero, false, ctx.Err()
	}
}

// run fetches what is pending, batch after batch, until nothing is.
func (g *Group[K, V]) run() {
	for {
		g.mu.Lock()
		n := min(len(g.order), g.max)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		keys := make([]K, n)
		copy(keys, g.order)
		calls := make([]*call[V], n)
		for i, k := range keys {
			calls[i] = g.pending[k]
			delete(g.pending, k)
		}
		g.order = g.order[n:]
		if len(g.order) == 0 {
			g.order = nil // let the backing array go
		}
		g.mu.Unlock()

		found, err := g.fetchOnce(keys)
		for i, c := range calls {
			c.err = err
			if err == nil {
				c.v, c.found = found[keys[i]]
			}
			close(c.done)
		}
	}
}

// fetchOnce calls fetch, turning a panic into the error of this batch's lookups rather
// than the end of the process (a handler's panic would have been one call's error).
func (g *Group[K, V]) fetchOnce(keys []K) (found map[K]V, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch: fetch panicked: %v", r)
		}
	}()
	return g.fetch(ctx, keys)
}
