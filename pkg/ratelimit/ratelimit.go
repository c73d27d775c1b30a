// Package ratelimit holds in-memory token buckets keyed by string: per API key, per client
// IP and per account at the edges (docs/rest.md, "Limits"). Limits that must hold across
// replicas live in Postgres, not here.
//
// Each bucket is kept as a GCRA "theoretical arrival time" in integer nanoseconds rather
// than a float token count: one int64 per key, no rounding drift (exactly burst + rate*t
// requests pass over t), and a bucket is full again exactly when that time has passed,
// which is all Sweep needs to know without the bucket's Limit.
package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/latchkey/latchkey/pkg/periodic"
)

// Limit is a refill rate and a burst. A zero Limit means unlimited; so does any Limit whose
// PerSecond is not positive (or exceeds one per nanosecond), so a missing rate never
// becomes a bucket that refuses forever and can never be swept. A Burst below 1 with a
// positive rate counts as 1: a bucket that can never hold a token would refuse everything.
type Limit struct {
	PerSecond float64
	Burst     int
}

// Unlimited reports whether l lets everything through.
func (l Limit) Unlimited() bool {
	_, _, ok := l.params()
	return !ok
}

// Caps on the emission interval (about 52 days per token) and the burst tolerance (about
// 73 years) so that now + tolerance + interval never overflows an int64 within 146 years
// of New. Capping the tolerance far above the interval keeps an absurd Limit from
// collapsing its burst to a couple of tokens.
const (
	maxInterval  = int64(1) << 52
	maxTolerance = int64(1) << 61
)

// params returns the emission interval (time per token) and the tolerance (how far the
// theoretical arrival time may run ahead of now), both in nanoseconds; ok is false when
// the limit is unlimited.
func (l Limit) params() (interval, tolerance int64, ok bool) {
	if !(l.PerSecond > 0) { // also catches NaN
		return 0, 0, false
	}
	f := float64(time.Second) / l.PerSecond
	if f < 1 {
		return 0, 0, false
	}
	// Truncating rounds the interval down, so at least rate*t tokens accrue over t.
	interval = maxInterval
	if f < float64(maxInterval) {
		interval = int64(f)
	}
	extra := int64(l.Burst) - 1
	if extra < 0 {
		extra = 0
	}
	tolerance = maxTolerance
	if extra <= maxTolerance/interval {
		tolerance = extra * interval
	}
	return interval, tolerance, true
}

const numShards = 64

// shardFields is padded out to a cache line in shard so that two shards' locks never
// share one (false sharing would bring back the contention sharding removes).
type shardFields struct {
	mu sync.Mutex
	// tat is each key's theoretical arrival time, in ns since the Limiter's epoch: the
	// bucket is full when tat <= now and empty when tat-now exceeds the tolerance.
	tat map[string]int64
}

type shard struct {
	shardFields
	_ [(64 - unsafe.Sizeof(shardFields{})%64) % 64]byte
}

// Limiter holds one bucket per key. It is safe for concurrent use. Keys are spread over 64
// shards by maphash so hot paths on different keys rarely contend, and Sweep (or Run)
// drops buckets that are full again, so memory stays bounded by the keys active within
// one sweep interval.
type Limiter struct {
	// shards comes first so that it starts where the allocation does, which for an
	// object this size is cache-line aligned.
	shards [numShards]shard
	clock  func() time.Time
	epoch  time.Time
	seed   maphash.Seed
}

// New returns an empty Limiter reading time from clock; a nil clock means time.Now.
// Tests inject a fake clock.
func New(clock func() time.Time) *Limiter {
	if clock == nil {
		clock = time.Now
	}
	l := &Limiter{clock: clock, seed: maphash.MakeSeed()}
	// Times are kept relative to an epoch so that they fit an int64 and, with time.Now,
	// use the monotonic clock (wall-clock jumps do not refill or drain buckets).
	l.epoch = clock()
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

func (l *Limiter) now() int64 { return int64(l.clock().Sub(l.epoch)) }

func (l *Limiter) shard(key string) *shard {
	return &l.shards[maphash.String(l.seed, key)%numShards]
}

// Allow takes one token from key's bucket under limit. When none is left it returns false
// and how long until one is. It does not allocate when key's bucket already exists.
//
// A bucket is keyed by key alone: calling with a different limit for the same key applies
// the new limit to the time already accounted for.
func (l *Limiter) Allow(key string, limit Limit) (ok bool, retryAfter time.Duration) {
	interval, tolerance, limited := limit.params()
	if !limited {
		return true, 0
	}
	now := l.now()
	s := l.shard(key)
	s.mu.Lock()
	tat, found := s.tat[key]
	if !found {
		// Clone so the map never pins a larger string the key was sliced from (a header,
		// a request buffer). This is the only allocation, once per new bucket.
		s.tat[strings.Clone(key)] = now + interval
		s.mu.Unlock()
		return true, 0
	}
	tat = max(tat, now)
	if wait := tat - now - tolerance; wait > 0 {
		s.mu.Unlock()
		return false, time.Duration(wait)
	}
	s.tat[key] = tat + interval
	s.mu.Unlock()
	return true, 0
}

// Peek reports whether Allow would succeed now, without taking a token or creating a
// bucket: the gateway uses it to refuse a client IP that already spent its
// failed-authentication budget before doing any work for it.
func (l *Limiter) Peek(key string, limit Limit) (ok bool, retryAfter time.Duration) {
	_, tolerance, limited := limit.params()
	if !limited {
		return true, 0
	}
	now := l.now()
	s := l.shard(key)
	s.mu.Lock()
	tat, found := s.tat[key]
	s.mu.Unlock()
	if !found {
		return true, 0
	}
	if wait := max(tat, now) - now - tolerance; wait > 0 {
		return false, time.Duration(wait)
	}
	return true, 0
}

// Sweep drops every bucket that is full again. Such a bucket carries no state: recreating
// it on the next request gives the same answer.
func (l *Limiter) Sweep() {
	for i := range l.shards {
		s := &l.shards[i]
		// Read the clock per shard: a sweep over many keys may take a while.
		now := l.now()
		s.mu.Lock()
		for k, tat := range s.tat {
			if tat <= now {
				delete(s.tat, k)
			}
		}
		s.mu.Unlock()
	}
}

// Run calls Sweep every interval until ctx ends. A non-positive interval means one
// minute.
func (l *Limiter) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	_ = periodic.Every(ctx, every, func(context.Context) { l.Sweep() })
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1, for a Retry-After header or
// a retry_after_seconds field: rounding down would invite a retry that is refused again.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 1
	}
	s := int64(math.Ceil(d.Seconds()))
	return max(s, 1)
}
