package ratelimit

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/latchkey/latchkey/pkg/testutil"
)

// fakeClock is safe for concurrent use so that tests may move it while workers call Allow.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func mustAllow(t *testing.T, l *Limiter, key string, lim Limit) {
	t.Helper()
	if ok, ra := l.Allow(key, lim); !ok {
		t.Fatalf("Allow(%q) refused, retryAfter %v; want allowed", key, ra)
	}
}

func mustRefuse(t *testing.T, l *Limiter, key string, lim Limit, wantRetry time.Duration) {
	t.Helper()
	ok, ra := l.Allow(key, lim)
	if ok {
		t.Fatalf("Allow(%q) allowed; want refused", key)
	}
	if ra != wantRetry {
		t.Fatalf("Allow(%q) retryAfter = %v; want %v", key, ra, wantRetry)
	}
}

func TestBurstThenRefusal(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: 10, Burst: 5}
	for range 5 {
		mustAllow(t, l, "k", lim)
	}
	// One token every 100ms; the bucket was emptied at this very instant.
	mustRefuse(t, l, "k", lim, 100*time.Millisecond)
	clk.Advance(30 * time.Millisecond)
	mustRefuse(t, l, "k", lim, 70*time.Millisecond)
	// A refusal takes nothing: the wait keeps shrinking with the clock alone.
	mustRefuse(t, l, "k", lim, 70*time.Millisecond)
}

func TestRefillOverTime(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: 2, Burst: 3}
	for range 3 {
		mustAllow(t, l, "k", lim)
	}
	mustRefuse(t, l, "k", lim, 500*time.Millisecond)

	clk.Advance(500 * time.Millisecond)
	mustAllow(t, l, "k", lim)
	mustRefuse(t, l, "k", lim, 500*time.Millisecond)

	// Refill is capped at the burst, however long the bucket sat idle.
	clk.Advance(time.Hour)
	for range 3 {
		mustAllow(t, l, "k", lim)
	}
	mustRefuse(t, l, "k", lim, 500*time.Millisecond)
}

func TestPeek(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: 1, Burst: 2}

	if ok, _ := l.Peek("ip", lim); !ok {
		t.Fatal("Peek on an unknown key refused")
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("Peek created a bucket: Len = %d", n)
	}
	mustAllow(t, l, "ip", lim)
	mustAllow(t, l, "ip", lim)
	for range 3 { // Peek never takes a token, so it keeps answering the same.
		ok, ra := l.Peek("ip", lim)
		if ok || ra != time.Second {
			t.Fatalf("Peek = %v, %v; want false, 1s", ok, ra)
		}
	}
	clk.Advance(time.Second)
	for range 3 {
		if ok, _ := l.Peek("ip", lim); !ok {
			t.Fatal("Peek refused after refill")
		}
	}
	mustAllow(t, l, "ip", lim)
	mustRefuse(t, l, "ip", lim, time.Second)
}

func TestKeysIndependent(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: 1, Burst: 1}
	mustAllow(t, l, "a", lim)
	mustRefuse(t, l, "a", lim, time.Second)
	mustAllow(t, l, "b", lim)
	mustRefuse(t, l, "b", lim, time.Second)
	// Many keys land in the same shard; none may see another's bucket.
	for i := range 1000 {
		mustAllow(t, l, fmt.Sprintf("key-%d", i), lim)
	}
	if n := l.Len(); n != 1002 {
		t.Fatalf("Len = %d; want 1002", n)
	}
}

// TestExactCountConcurrent checks that exactly burst + rate*t requests pass over t while
// many goroutines race for the same bucket. Each step drains the bucket before the clock
// moves, so no refill is lost to the burst cap and the expected count is exact.
func TestExactCountConcurrent(t *testing.T) {
	const (
		burst   = 100
		rate    = 1000.0 // one token per millisecond
		step    = 7 * time.Millisecond
		steps   = 200
		workers = 32
	)
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: rate, Burst: burst}

	var allowed atomic.Int64
	hammer := func(attempts int) {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for range attempts {
					if ok, _ := l.Allow("hot", lim); ok {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}

	hammer(4*burst/workers + 1) // about 4x the burst in attempts
	if got := allowed.Load(); got != burst {
		t.Fatalf("allowed %d at t=0; want burst %d", got, burst)
	}
	for range steps {
		clk.Advance(step)
		hammer(2) // 64 attempts for 7 new tokens
	}
	elapsed := steps * step
	want := int64(burst + rate*elapsed.Seconds())
	if got := allowed.Load(); got != want {
		t.Fatalf("allowed %d over %v; want burst + rate*t = %d", got, elapsed, want)
	}
}

// TestNeverExceedsConcurrent moves the clock while workers call Allow, the way real time
// moves, and checks the bound at every point: never more than burst + rate*t.
func TestNeverExceedsConcurrent(t *testing.T) {
	const (
		burst   = 10
		rate    = 1000.0
		workers = 16
		steps   = 2000
		step    = 100 * time.Microsecond
	)
	clk := newFakeClock()
	start := clk.Now()
	l := New(clk.Now)
	lim := Limit{PerSecond: rate, Burst: burst}

	var allowed, calls atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ok, _ := l.Allow("hot", lim)
				calls.Add(1)
				if ok {
					// Read the clock after the grant: the bound must hold at that time.
					n := allowed.Add(1)
					bound := burst + int64(rate*clk.Now().Sub(start).Seconds())
					if n > bound {
						t.Errorf("allowed %d > bound %d", n, bound)
					}
				}
			}
		})
	}
	// Move the clock only after the workers have made progress, so that calls and clock
	// steps interleave however the scheduler runs them.
	for range steps {
		seen := calls.Load()
		for calls.Load() < seen+workers {
			runtime.Gosched()
		}
		clk.Advance(step)
	}
	close(stop)
	wg.Wait()
	// With the workers outrunning the clock, the bucket is drained at every step.
	if got, want := allowed.Load(), int64(burst+rate*(steps*step).Seconds()); got < want*9/10 {
		t.Fatalf("allowed %d; want close to %d", got, want)
	}
}

func TestSweepDropsOnlyFullBuckets(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	slow := Limit{PerSecond: 1, Burst: 2}
	fast := Limit{PerSecond: 100, Burst: 2}

	mustAllow(t, l, "slow", slow) // needs 1s to be full again
	mustAllow(t, l, "fast", fast) // needs 10ms
	mustAllow(t, l, "drained", slow)
	mustAllow(t, l, "drained", slow) // needs 2s
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d; want 3", n)
	}

	l.Sweep()
	if n := l.Len(); n != 3 {
		t.Fatalf("Sweep at t=0 dropped buckets: Len = %d; want 3", n)
	}
	clk.Advance(10 * time.Millisecond)
	l.Sweep()
	if n := l.Len(); n != 2 {
		t.Fatalf("after 10ms Len = %d; want 2 (fast dropped)", n)
	}
	clk.Advance(990 * time.Millisecond)
	l.Sweep()
	if n := l.Len(); n != 1 {
		t.Fatalf("after 1s Len = %d; want 1 (slow dropped)", n)
	}
	// The remaining bucket still holds its state: it has refilled one of its two tokens.
	mustAllow(t, l, "drained", slow)
	mustRefuse(t, l, "drained", slow, time.Second)

	clk.Advance(2 * time.Second)
	l.Sweep()
	if n := l.Len(); n != 0 {
		t.Fatalf("after refill Len = %d; want 0", n)
	}
}

func TestZeroLimitAlwaysAllows(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	for _, lim := range []Limit{
		{},
		{Burst: 5},
		{PerSecond: -1, Burst: 5},
		{PerSecond: math.NaN(), Burst: 5},
		{PerSecond: math.Inf(1)},
		{PerSecond: 2e9, Burst: 1}, // faster than one per nanosecond
	} {
		if !lim.Unlimited() {
			t.Fatalf("%+v: Unlimited() = false", lim)
		}
		for range 1000 {
			if ok, ra := l.Allow("k", lim); !ok || ra != 0 {
				t.Fatalf("%+v: Allow = %v, %v; want true, 0", lim, ok, ra)
			}
			if ok, _ := l.Peek("k", lim); !ok {
				t.Fatalf("%+v: Peek refused", lim)
			}
		}
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("unlimited calls created buckets: Len = %d", n)
	}
}

func TestBurstBelowOneCountsAsOne(t *testing.T) {
	l := New(newFakeClock().Now)
	lim := Limit{PerSecond: 4}
	mustAllow(t, l, "k", lim)
	mustRefuse(t, l, "k", lim, 250*time.Millisecond)
}

func TestExtremeLimitsDoNotOverflow(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	// The interval caps at 2^52ns and the tolerance at 2^61ns: 512 tokens.
	tiny := Limit{PerSecond: 1e-30, Burst: math.MaxInt}
	for range 513 {
		mustAllow(t, l, "tiny", tiny)
	}
	mustRefuse(t, l, "tiny", tiny, 1<<52)
	huge := Limit{PerSecond: 1, Burst: math.MaxInt}
	for range 1000 {
		mustAllow(t, l, "huge", huge)
	}
	once := Limit{PerSecond: 1e-30, Burst: 1}
	mustAllow(t, l, "once", once)
	mustRefuse(t, l, "once", once, 1<<52)
}

func TestClockGoingBackwards(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	lim := Limit{PerSecond: 1, Burst: 1}
	mustAllow(t, l, "k", lim)
	clk.Advance(-time.Hour)
	// A clock that steps back must not hand out tokens; the wait just grows.
	ok, ra := l.Allow("k", lim)
	if ok || ra != time.Hour+time.Second {
		t.Fatalf("Allow = %v, %v; want false, 1h1s", ok, ra)
	}
}

func TestKeyIsCloned(t *testing.T) {
	l := New(newFakeClock().Now)
	lim := Limit{PerSecond: 1, Burst: 1}
	buf := []byte("key-a")
	key := unsafe.String(&buf[0], len(buf)) // a key that aliases a mutable buffer
	mustAllow(t, l, key, lim)
	copy(buf, "key-b")
	mustRefuse(t, l, "key-a", lim, time.Second)
	mustAllow(t, l, "key-b", lim)
}

func TestRun(t *testing.T) {
	clk := newFakeClock()
	l := New(clk.Now)
	mustAllow(t, l, "k", Limit{PerSecond: 1, Burst: 1})
	clk.Advance(time.Second)

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { l.Run(ctx, time.Millisecond); close(done) }()
	testutil.Eventually(t, 5*time.Second, func() bool { return l.Len() == 0 }, "Run to sweep the full bucket")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := New(nil)
	lim := Limit{PerSecond: 1e6, Burst: 10}
	key := "an-existing-key"
	l.Allow(key, lim)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(key, lim) }); n != 0 {
		t.Fatalf("Allow on an existing key: %v allocs; want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { l.Peek(key, lim) }); n != 0 {
		t.Fatalf("Peek: %v allocs; want 0", n)
	}
}

func TestShardPadding(t *testing.T) {
	if s := unsafe.Sizeof(shard{}); s%64 != 0 {
		t.Fatalf("shard is %d bytes; want a multiple of 64", s)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 1},
		{time.Nanosecond, 1},
		{time.Second, 1},
		{time.Second + time.Nanosecond, 2},
		{90 * time.Second, 90},
	} {
		if got := RetryAfterSeconds(c.d); got != c.want {
			t.Errorf("RetryAfterSeconds(%v) = %d; want %d", c.d, got, c.want)
		}
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(nil)
	lim := Limit{PerSecond: 1e6, Burst: 1000}
	key := "lk_live_0123456789abcdef"
	l.Allow(key, lim)
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(key, lim)
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l := New(nil)
	lim := Limit{PerSecond: 1e6, Burst: 1000}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("lk_live_%016x", i)
		l.Allow(keys[i], lim)
	}
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine walks the keys from its own offset, as requests on different
		// keys would arrive.
		i := int(next.Add(97))
		for pb.Next() {
			l.Allow(keys[i%len(keys)], lim)
			i++
		}
	})
}
