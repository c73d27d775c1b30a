// Package keycache is the gateway's verification cache: what the keys service said about a
// key, by the SHA-256 of the presented key, for at most a bounded time. Invalidation
// events drop entries by key id, account or project; a flush drops everything. A cache is
// trusted only while its gateway follows the event stream: Distrust (on a disconnect or a
// lost consumer) makes every entry stale at once and stops caching until Trust.
package keycache

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/latchkey/latchkey/pkg/verdict"
)

// Hash is a cache key: the SHA-256 of the presented key. Unkeyed, so gateways never hold
// the pepper; collision-resistant, so no other string can stand in for a cached key.
type Hash [32]byte

// Sum hashes a presented key without copying it.
func Sum(key string) Hash {
	// sha256 only reads the bytes; copying a 56-byte key would cost a heap allocation.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(key), len(key))) //nolint:gosec // read-only view
}

// Entry is one cached answer. Entries are immutable once stored; changes replace them.
type Entry struct {
	// Found is false for a key the keys service does not know (a brief negative entry).
	Found       bool
	KeyID       string
	AccountID   string
	ProjectID   string
	Environment string
	Type        string
	// Anonymous is an unclaimed anonymous key's: its data goes to the anonymous stream.
	Anonymous bool
	// Notice is the grant's notice to the client (grant.Grant.Notice).
	Notice string
	// ServerID is a collector key's server (grant.Grant.ServerID).
	ServerID string
	Facts    verdict.Facts
	// storedAt is unix nanoseconds.
	storedAt int64
	// hash is the full key hash; the map is keyed by its first 8 bytes, cheaper to hash.
	hash Hash
}

const shards = 64

type shard struct {
	mu sync.RWMutex
	m  map[uint64]*Entry
}

// short is the map key of a hash: its first 8 bytes. Entries carry the full hash, and a
// lookup compares it, so a clash of short keys is a miss, never a wrong answer.
func short(h *Hash) uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// Cache is safe for concurrent use. A hit takes a read lock on one of 64 shards and
// allocates nothing.
type Cache struct {
	shards [shards]shard
	// maxAge bounds every positive entry; negTTL every negative one.
	maxAge, negTTL int64
	// The epochs move on invalidations, so an answer fetched across one is not cached:
	// found moves when known keys change (revocations, rotations, project or account
	// changes), unknown when keys are created. Kept apart, a stream of new keys does not
	// stop answers about existing ones from being cached.
	found, unknown atomic.Uint64
	size           atomic.Int64

	// trusted is false from Distrust to Trust: Get misses and Put stores nothing. Lock-free
	// to read; trustMu orders Distrust and Trust, and distrusts counts Distrust calls.
	trusted   atomic.Bool
	trustMu   sync.Mutex
	distrusts uint64

	// byKey finds a known key's entry for DropKey without scanning (every key event would
	// otherwise walk the whole cache). It may name entries already gone: DropKey checks.
	idxMu sync.Mutex
	byKey map[string]Hash

	// Unknown keys live apart, so DropNegative (on every key created, in any account) is
	// one swap rather than a scan.
	negMu sync.RWMutex
	neg   map[uint64]*Entry
}

// New returns an empty cache, trusted (a gateway distrusts it until it follows the stream).
func New(maxAge, negativeTTL time.Duration) *Cache {
	c := &Cache{maxAge: int64(maxAge), negTTL: int64(negativeTTL), byKey: map[string]Hash{}, neg: map[uint64]*Entry{}}
	for i := range c.shards {
		c.shards[i].m = map[uint64]*Entry{}
	}
	c.trusted.Store(true)
	return c
}

// Distrust makes every entry stale from this moment, and stops caching, until Trust: the
// gateway can no longer confirm that it follows the event stream (it lost its NATS
// connection, or its consumer), so an entry may name a key revoked since. Answers fetched
// before it and stored after it are refused too (the epochs move).
func (c *Cache) Distrust() {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	c.distrusts++
	c.trusted.Store(false)
	c.found.Add(1)
	c.unknown.Add(1)
}

// Trusted reports whether entries are used.
func (c *Cache) Trusted() bool { return c.trusted.Load() }

// Distrusts is a token for Trust: read it before (re)subscribing to the event stream.
func (c *Cache) Distrusts() uint64 {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	return c.distrusts
}

// Trust flushes the cache and trusts it again, once the gateway follows the event stream
// from a moment after token was read. If Distrust was called since, it does neither and
// returns false: that subscription may not have seen everything.
func (c *Cache) Trust(token uint64) bool {
	c.trustMu.Lock()
	defer c.trustMu.Unlock()
	if c.distrusts != token {
		return false
	}
	c.Flush()
	c.trusted.Store(true)
	return true
}

func (c *Cache) shard(h *Hash) *shard { return &c.shards[h[31]%shards] }

// Get returns the entry for h if it is younger than its bound at now (unix nanoseconds).
func (c *Cache) Get(h *Hash, now int64) (*Entry, bool) {
	if !c.trusted.Load() {
		return nil, false
	}
	s := c.shard(h)
	s.mu.RLock()
	e, ok := s.m[short(h)]
	s.mu.RUnlock()
	if ok && e.hash == *h && now-e.storedAt <= c.maxAge {
		return e, true
	}
	c.negMu.RLock()
	e, ok = c.neg[short(h)]
	c.negMu.RUnlock()
	if ok && e.hash == *h && now-e.storedAt <= c.negTTL {
		return e, true
	}
	return nil, false
}

// Epoch is the invalidation state; read it before fetching an answer and pass it to Put.
type Epoch struct{ found, unknown uint64 }

// Key is a string naming the epoch, for keying work that must not span an invalidation.
func (e Epoch) Key() string {
	return strconv.FormatUint(e.found, 36) + "." + strconv.FormatUint(e.unknown, 36)
}

// Epoch returns the current invalidation state.
func (c *Cache) Epoch() Epoch { return Epoch{c.found.Load(), c.unknown.Load()} }

// Put stores e for h unless an invalidation happened since epoch was read (the answer may
// predate it, and caching it could resurrect a revoked key) or the cache is distrusted.
func (c *Cache) Put(h Hash, e *Entry, epoch Epoch, now int64) bool {
	e.storedAt, e.hash = now, h
	if !c.trusted.Load() {
		return false
	}
	if !e.Found {
		c.negMu.Lock()
		defer c.negMu.Unlock()
		if c.unknown.Load() != epoch.unknown {
			return false
		}
		if _, had := c.neg[short(&h)]; !had {
			c.size.Add(1)
		}
		c.neg[short(&h)] = e
		return true
	}
	s := c.shard(&h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.found.Load() != epoch.found {
		return false
	}
	if _, had := s.m[short(&h)]; !had {
		c.size.Add(1)
	}
	s.m[short(&h)] = e
	c.idxMu.Lock()
	c.byKey[e.KeyID] = h
	c.idxMu.Unlock()
	return true
}

// drop removes every known-key entry match selects and returns how many, after moving
// the epoch: rare events (suspensions, project changes, flushes) may scan.
func (c *Cache) drop(match func(*Entry) bool) int {
	c.found.Add(1)
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.m {
			if match(e) {
				delete(s.m, h)
				n++
			}
		}
		s.mu.Unlock()
	}
	c.size.Add(-int64(n))
	return n
}

// DropKey drops a key's entry (revoked, rotated, updated, claimed), found by its index.
func (c *Cache) DropKey(keyID string) int {
	c.found.Add(1)
	c.idxMu.Lock()
	h, ok := c.byKey[keyID]
	delete(c.byKey, keyID)
	c.idxMu.Unlock()
	if !ok {
		return 0
	}
	s := c.shard(&h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[short(&h)]; ok && e.KeyID == keyID {
		delete(s.m, short(&h))
		c.size.Add(-1)
		return 1
	}
	return 0
}

// DropAccount drops every entry of an account (suspended, plan changed).
func (c *Cache) DropAccount(accountID string) int {
	return c.drop(func(e *Entry) bool { return e.AccountID == accountID })
}

// DropProject drops every entry of a project (origins changed, project deleted).
func (c *Cache) DropProject(accountID, projectID string) int {
	return c.drop(func(e *Entry) bool { return e.AccountID == accountID && e.ProjectID == projectID })
}

// DropNegative drops the "unknown key" entries, when a key is created.
func (c *Cache) DropNegative() int {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.unknown.Add(1)
	n := len(c.neg)
	c.neg = map[uint64]*Entry{}
	c.size.Add(-int64(n))
	return n
}

// Flush drops everything: after a disconnect or a gap in the event stream, nothing
// cached can be trusted to be current.
func (c *Cache) Flush() int {
	n := c.DropNegative() + c.drop(func(*Entry) bool { return true })
	c.idxMu.Lock()
	c.byKey = map[string]Hash{}
	c.idxMu.Unlock()
	return n
}

// Len is the number of entries, including expired ones not yet replaced.
func (c *Cache) Len() int { return int(c.size.Load()) }

// OldestAge is the age of the oldest entry at now (unix nanoseconds).
func (c *Cache) OldestAge(now int64) time.Duration {
	oldest := now
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for _, e := range s.m {
			if e.storedAt < oldest {
				oldest = e.storedAt
			}
		}
		s.mu.RUnlock()
	}
	return time.Duration(now - oldest)
}

// Sweep removes entries past their bound, and index entries whose entry is gone, so
// memory follows the keys in use.
func (c *Cache) Sweep(now int64) int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.m {
			if now-e.storedAt > c.maxAge {
				delete(s.m, h)
				n++
			}
		}
		s.mu.Unlock()
	}
	c.negMu.Lock()
	for h, e := range c.neg {
		if now-e.storedAt > c.negTTL {
			delete(c.neg, h)
			n++
		}
	}
	c.negMu.Unlock()
	c.size.Add(-int64(n))

	// Put takes a shard's lock and then idxMu; here idxMu is held first, so a shard's lock
	// is only tried: blocking on it would deadlock with a Put that holds it and waits for
	// idxMu. An index entry whose shard is busy is looked at again next sweep.
	c.idxMu.Lock()
	defer c.idxMu.Unlock()
	for id, h := range c.byKey {
		s := c.shard(&h)
		if !s.mu.TryRLock() {
			continue
		}
		e, ok := s.m[short(&h)]
		s.mu.RUnlock()
		if !ok || e.KeyID != id {
			delete(c.byKey, id)
		}
	}
	return n
}
