package keycache

import (
	"strconv"
	"testing"
	"time"
)

func entry(key, account, project string) *Entry {
	return &Entry{Found: true, KeyID: key, AccountID: account, ProjectID: project}
}

func TestBoundsAndDrops(t *testing.T) {
	c := New(time.Second, 100*time.Millisecond)
	now := time.Now().UnixNano()
	a, b, n := Sum("key-a"), Sum("key-b"), Sum("unknown")
	c.Put(a, entry("key_a", "acc_1", "prj_1"), c.Epoch(), now)
	c.Put(b, entry("key_b", "acc_1", "prj_2"), c.Epoch(), now)
	c.Put(n, &Entry{}, c.Epoch(), now)

	if _, ok := c.Get(&a, now+int64(time.Second)); !ok {
		t.Fatal("an entry is good up to its bound")
	}
	if _, ok := c.Get(&a, now+int64(time.Second)+1); ok {
		t.Fatal("and not a nanosecond past it")
	}
	if _, ok := c.Get(&n, now+int64(200*time.Millisecond)); ok {
		t.Fatal("negative entries have their own, shorter bound")
	}
	if c.DropProject("acc_1", "prj_2") != 1 {
		t.Fatal("DropProject drops the project's entries only")
	}
	if _, ok := c.Get(&a, now); !ok {
		t.Fatal("other projects' entries stay")
	}
	if c.DropNegative() != 1 || c.DropKey("key_a") != 1 || c.Len() != 0 {
		t.Fatalf("drops: len %d", c.Len())
	}
}

// TestAnswerFetchedAcrossAnInvalidationIsNotCached: a VerifyKey answer that left the keys
// service before a revocation arrives after the revocation's event; caching it would bring
// the revoked key back until the staleness bound.
func TestAnswerFetchedAcrossAnInvalidationIsNotCached(t *testing.T) {
	c := New(time.Minute, time.Second)
	h := Sum("key")
	epoch := c.Epoch() // the fetch begins
	c.DropKey("key_x") // an event arrives meanwhile
	if c.Put(h, entry("key_x", "acc", "prj"), epoch, time.Now().UnixNano()) {
		t.Fatal("a stale answer was cached")
	}
	if _, ok := c.Get(&h, time.Now().UnixNano()); ok {
		t.Fatal("a stale answer is served")
	}
	if !c.Put(h, entry("key_x", "acc", "prj"), c.Epoch(), time.Now().UnixNano()) {
		t.Fatal("a fresh answer is cached")
	}

	// A key created meanwhile makes "unknown key" answers stale, not answers about others.
	epoch = c.Epoch()
	c.DropNegative()
	if !c.Put(Sum("known"), entry("key_y", "acc", "prj"), epoch, time.Now().UnixNano()) {
		t.Fatal("a new key elsewhere kept a known key's answer out of the cache")
	}
	if c.Put(Sum("unknown"), &Entry{}, epoch, time.Now().UnixNano()) {
		t.Fatal("an unknown-key answer fetched across a creation was cached")
	}
}

func TestSweepAndOldest(t *testing.T) {
	c := New(time.Second, time.Second)
	now := time.Now().UnixNano()
	h1, h2 := Sum("old"), Sum("new")
	c.Put(h1, entry("k1", "a", "p"), c.Epoch(), now-int64(2*time.Second))
	c.Put(h2, entry("k2", "a", "p"), c.Epoch(), now)
	if got := c.OldestAge(now); got != 2*time.Second {
		t.Fatalf("oldest = %v", got)
	}
	if c.Sweep(now) != 1 || c.Len() != 1 {
		t.Fatalf("sweep kept %d", c.Len())
	}
}

func TestGetAllocatesNothing(t *testing.T) {
	c := New(time.Minute, time.Second)
	h := Sum("key")
	now := time.Now().UnixNano()
	c.Put(h, entry("k", "a", "p"), c.Epoch(), now)
	if n := testing.AllocsPerRun(1000, func() {
		h := Sum("key")
		c.Get(&h, now)
	}); n != 0 {
		t.Fatalf("Sum+Get allocates %v times", n)
	}
}

// Two hashes sharing their first 8 bytes (the map key) never answer for each other.
func TestShortKeyClashIsAMiss(t *testing.T) {
	c := New(time.Minute, time.Second)
	a, b := Sum("a"), Sum("a")
	b[30] ^= 0xff // same short key and shard, other hash
	now := time.Now().UnixNano()
	c.Put(a, entry("key_a", "acc", "prj"), c.Epoch(), now)
	if _, ok := c.Get(&b, now); ok {
		t.Fatal("a clashing hash got another key's entry")
	}
	if e, ok := c.Get(&a, now); !ok || e.KeyID != "key_a" {
		t.Fatal("the entry itself is still found")
	}
}

// TestDistrustedFromTheMomentOfDisconnect: once distrusted, no entry is served and no
// answer is kept, whether fetched before or during the distrust, until Trust; and Trust
// with a token from before a later Distrust trusts nothing.
func TestDistrustedFromTheMomentOfDisconnect(t *testing.T) {
	c := New(time.Hour, time.Hour)
	now := time.Now().UnixNano()
	a, b, n := Sum("a"), Sum("b"), Sum("unknown")
	c.Put(a, entry("key_a", "acc", "prj"), c.Epoch(), now)
	c.Put(n, &Entry{}, c.Epoch(), now)
	before := c.Epoch() // a fetch under way at the disconnect
	c.Distrust()
	if c.Trusted() {
		t.Fatal("trusted after Distrust")
	}
	for _, h := range []Hash{a, n} {
		if _, ok := c.Get(&h, now); ok {
			t.Fatal("an entry from before the disconnect is served")
		}
	}
	if c.Put(b, entry("key_b", "acc", "prj"), before, now) || c.Put(b, entry("key_b", "acc", "prj"), c.Epoch(), now) {
		t.Fatal("an answer was cached while distrusted")
	}

	token := c.Distrusts()
	c.Distrust() // lost again while resubscribing
	if c.Trust(token) || c.Trusted() {
		t.Fatal("a subscription begun before the last Distrust was trusted")
	}
	if !c.Trust(c.Distrusts()) || !c.Trusted() {
		t.Fatal("Trust with a current token")
	}
	if _, ok := c.Get(&a, now); ok || c.Len() != 0 {
		t.Fatalf("Trust flushes what was cached before: len %d", c.Len())
	}
	if !c.Put(b, entry("key_b", "acc", "prj"), c.Epoch(), now) {
		t.Fatal("trusted again, answers are cached")
	}
}

// TestSweepBesidePuts: a sweep while answers are being stored, as on a gateway's cold
// start, never blocks them. Put takes a shard's lock, then the index's; the sweep once took
// them the other way round, and a gateway's requests then hung for good on that shard.
func TestSweepBesidePuts(t *testing.T) {
	c := New(time.Nanosecond, time.Nanosecond) // every entry is already past its bound
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20_000 {
			c.Put(Sum(strconv.Itoa(i)), entry("key_"+strconv.Itoa(i), "acc_1", "prj_1"), c.Epoch(), time.Now().UnixNano())
		}
	}()
	go func() {
		for {
			select {
			case <-done:
				return
			default:
				c.Sweep(time.Now().UnixNano())
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Put blocked behind Sweep")
	}
}
