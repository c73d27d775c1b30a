package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A lookup that arrives while a fetch is under way never shares it, even for the same key:
// its answer comes from a fetch that began after it was asked, so it sees a change made
// before it was asked (the gateway's guarantee after dropping a revoked key).
func TestNeverSharesAFetchAlreadyUnderway(t *testing.T) {
	var (
		version  atomic.Int64 // the "database"
		started  = make(chan struct{}, 10)
		release  = make(chan struct{})
		fetchNum atomic.Int64
	)
	g := New(func(_ context.Context, keys []string) (map[string]int64, error) {
		v := version.Load() // read when the fetch begins
		if fetchNum.Add(1) == 1 {
			started <- struct{}{}
			<-release
		}
		out := map[string]int64{}
		for _, k := range keys {
			out[k] = v
		}
		return out, nil
	}, 1, 100, time.Second)

	first := make(chan int64)
	go func() {
		v, _, _ := g.Get(context.Background(), "k")
		first <- v
	}()
	<-started        // the first fetch has read version 0 and is still under way
	version.Store(1) // a revocation commits
	second := make(chan int64)
	go func() {
		v, _, _ := g.Get(context.Background(), "k") // asked after the change
		second <- v
	}()
	waitFor(t, func() bool { return waiting(g, "k") == 1 }) // queued behind the running fetch
	close(release)
	if v := <-first; v != 0 {
		t.Fatalf("first lookup: %d", v)
	}
	if v := <-second; v != 1 {
		t.Fatalf("a lookup asked after the change got the answer of a fetch begun before it (version %d)", v)
	}
}

// Lookups that wait together go in one fetch, identical keys once; a key the fetch does
// not return is not found.
func TestCoalescesWaitingLookups(t *testing.T) {
	var (
		mu      sync.Mutex
		batches [][]string
		release = make(chan struct{})
	)
	g := New(func(_ context.Context, keys []string) (map[string]string, error) {
		mu.Lock()
		batches = append(batches, keys)
		n := len(batches)
		mu.Unlock()
		if n == 1 {
			<-release
		}
		out := map[string]string{}
		for _, k := range keys {
			if k != "missing" {
				out[k] = "v-" + k
			}
		}
		return out, nil
	}, 1, 100, time.Second)

	var wg sync.WaitGroup
	get := func(k string, want string, wantFound bool) {
		defer wg.Done()
		v, ok, err := g.Get(context.Background(), k)
		if err != nil || ok != wantFound || v != want {
			t.Errorf("Get(%q) = %q, %v, %v; want %q, %v", k, v, ok, err, want, wantFound)
		}
	}
	wg.Add(1)
	go get("a", "v-a", true) // the first fetch, held
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(batches) == 1 })
	for _, k := range []string{"b", "c", "c", "missing"} {
		wg.Add(1)
		if k == "missing" {
			go get(k, "", false)
		} else {
			go get(k, "v-"+k, true)
		}
	}
	waitFor(t, func() bool { return waiting(g, "b") == 1 && waiting(g, "c") == 2 && waiting(g, "missing") == 1 })
	close(release)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 2 || len(batches[1]) != 3 {
		t.Fatalf("batches %v: want [a] then b, c, missing in one", batches)
	}
}

// A fetch's error is every lookup's of that batch; the next batch is fetched afresh. A
// panicking fetch is an error, not a crash. A caller whose context ends stops waiting.
func TestErrorsPanicsAndCancellation(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int64
	g := New(func(ctx context.Context, keys []string) (map[string]int, error) {
		switch calls.Add(1) {
		case 1:
			return nil, boom
		case 2:
			panic("bad")
		case 3:
			<-ctx.Done() // held until the batch's own timeout
			return nil, ctx.Err()
		}
		return map[string]int{keys[0]: 1}, nil
	}, 1, 10, 200*time.Millisecond)
	if _, _, err := g.Get(context.Background(), "x"); !errors.Is(err, boom) {
		t.Fatalf("first: %v", err)
	}
	if _, _, err := g.Get(context.Background(), "x"); err == nil {
		t.Fatal("a panicking fetch answered no error")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, _, err := g.Get(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("canceled caller: %v", err)
	}
	// The held fetch ends at its timeout; the next lookup gets a fetch of its own.
	if v, ok, err := g.Get(context.Background(), "y"); err != nil || !ok || v != 1 {
		t.Fatalf("after: %v %v %v", v, ok, err)
	}
}

// At most slots fetches run at once, and none is left waiting with nothing to run it.
func TestSlots(t *testing.T) {
	var running, peak atomic.Int64
	g := New(func(_ context.Context, keys []string) (map[string]int, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		running.Add(-1)
		out := map[string]int{}
		for _, k := range keys {
			out[k] = 1
		}
		return out, nil
	}, 2, 3, time.Second)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, ok, err := g.Get(context.Background(), string(rune('a'+i%50))); !ok || err != nil {
				t.Errorf("lookup %d: %v %v", i, ok, err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 2 {
		t.Fatalf("%d fetches at once, slots 2", p)
	}
}

// waiting is how many lookups of k wait for a fetch that has not begun.
func waiting[V any](g *Group[string, V], k string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.pending[k]; ok {
		return c.waiters
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
