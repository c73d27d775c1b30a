// Package chain defines the audit log's hash chain: the canonical bytes of an event's
// content, the hash that links it to the event before it, and the walk that checks a chain.
//
// Each account's events form one chain, in sequence order (1, 2, …):
//
//	hash = hex(SHA-256(prev_hash || Canonical(content)))
//
// where prev_hash is the previous event's hash as 64 lower-case hex characters (ASCII), or
// Genesis for the first event, and Canonical is the encoding below. Changing any field of
// a stored event changes its hash; removing or reordering events breaks the links.
package chain

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"slices"
	"time"
)

// Genesis is the prev_hash of an account's first event.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// version starts the canonical bytes, so a future encoding can never collide with this one.
const version = "latchkey.audit.v1"

// Content is what an event's hash covers: everything but its place in the chain.
type Content struct {
	ID           string
	Time         time.Time
	AccountID    string
	ActorType    string
	ActorID      string
	KeyID        string
	Action       string
	ResourceType string
	ResourceID   string
	Result       string
	RequestID    string
	ClientIP     string
	UserAgent    string
	Details      map[string]string
}

// Canonical returns the deterministic encoding of c: the version tag, then id, time,
// account_id, actor type, actor id, key_id, action, resource_type, resource_id, result,
// request_id, client_ip, user_agent, each as a 4-byte big-endian length and the bytes, then
// the number of details (4 bytes) and each detail, in byte order of its key, as key and
// value encoded the same way. Time is written in UTC as RFC 3339 with nanoseconds
// (trailing zeros dropped) at microsecond precision, which is what Postgres keeps.
func Canonical(c *Content) []byte {
	b := make([]byte, 0, 256)
	return appendCanonical(b, c)
}

func appendCanonical(b []byte, c *Content) []byte {
	for _, s := range [...]string{
		version, c.ID, FormatTime(c.Time), c.AccountID, c.ActorType, c.ActorID, c.KeyID,
		c.Action, c.ResourceType, c.ResourceID, c.Result, c.RequestID, c.ClientIP, c.UserAgent,
	} {
		b = appendField(b, s)
	}
	keys := make([]string, 0, len(c.Details))
	for k := range c.Details {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys))) //nolint:gosec // a map never holds 2^32 entries
	for _, k := range keys {
		b = appendField(b, k)
		b = appendField(b, c.Details[k])
	}
	return b
}

func appendField(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s))) //nolint:gosec // fields are bounded far below 4 GiB
	return append(b, s...)
}

// FormatTime is how Canonical writes a time.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)
}

// Hasher computes hashes, reusing its buffers; it is not safe for concurrent use.
type Hasher struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

// NewHasher returns a Hasher.
func NewHasher() *Hasher { return &Hasher{h: sha256.New(), buf: make([]byte, 0, 512)} }

// Hash returns the hash of an event with content c whose predecessor's hash is prev.
func (x *Hasher) Hash(prev string, c *Content) string {
	x.h.Reset()
	x.buf = appendCanonical(append(x.buf[:0], prev...), c)
	x.h.Write(x.buf)
	return hex.EncodeToString(x.h.Sum(x.sum[:0]))
}

// Hash returns the hash of an event with content c whose predecessor's hash is prev.
func Hash(prev string, c *Content) string { return NewHasher().Hash(prev, c) }

// Link is an event's place in its chain, as stored.
type Link struct {
	Sequence int64
	PrevHash string
	Hash     string
}

// Walker checks a chain one event at a time, in sequence order, against its checkpoints
// (whose signatures the caller has checked). The first event it sees must be the chain's
// first (sequence 1 after Genesis) or, when retention has cut the chain, the event the
// latest cut checkpoint names (its sequence and prev_hash): deleting the oldest events
// without a signed cut is caught. Every event a head checkpoint names must still have the
// hash signed for it, so rewriting events and recomputing the hashes from there on is
// caught too, as is removing the events a head checkpoint names from the end.
type Walker struct {
	h       *Hasher
	started bool
	seq     int64
	hash    string
	cut     *Checkpoint
	heads   map[int64]string
	maxHead int64
	// Checked counts the events seen, including a bad one.
	Checked int64
	// Problem says why the walk failed; "" while it has not.
	Problem string
}

// NewWalker returns a walker at the start of a chain with checkpoints cps.
func NewWalker(cps ...Checkpoint) *Walker {
	w := &Walker{h: NewHasher(), heads: map[int64]string{}}
	for i := range cps {
		switch c := &cps[i]; c.Kind {
		case KindCut:
			if w.cut == nil || c.Sequence > w.cut.Sequence {
				w.cut = c
			}
		case KindHead:
			w.heads[c.Sequence] = c.Hash
			w.maxHead = max(w.maxHead, c.Sequence)
		}
	}
	return w
}

// start is where the chain must begin: its first event, or where retention last cut it.
func (w *Walker) start() (sequence int64, prevHash string) {
	if w.cut != nil {
		return w.cut.Sequence, w.cut.Hash
	}
	return 1, Genesis
}

func (w *Walker) fail(problem string) bool {
	w.Problem = problem
	return false
}

// Next checks one event: its hash must match its content and prev_hash; the first must be
// where the chain starts (see Walker) and each later one must link to the one before (its
// prev_hash the previous hash, its sequence the next one); and a head checkpoint at its
// sequence must have its hash.
func (w *Walker) Next(l Link, c *Content) bool {
	w.Checked++
	if !w.started {
		if seq, prev := w.start(); l.Sequence != seq || l.PrevHash != prev {
			return w.fail("the chain does not start where it began or where retention last cut it: its oldest events were removed")
		}
	} else if l.Sequence != w.seq+1 || l.PrevHash != w.hash {
		return w.fail("the event does not link to the one before it: events were removed, added or reordered")
	}
	if w.h.Hash(l.PrevHash, c) != l.Hash {
		return w.fail("the event's content or links do not match its hash: it was changed")
	}
	if want, ok := w.heads[l.Sequence]; ok && want != l.Hash {
		return w.fail("the event's hash is not the one a signed checkpoint holds for it: the chain was rewritten")
	}
	w.started, w.seq, w.hash = true, l.Sequence, l.Hash
	return true
}

// Ends reports whether the walk ended where the chain's head says it does and no later
// than its newest head checkpoint: the last event seen must be the head. A walk that saw
// no event is right only for a chain that never had one, or whose every event retention
// cut (the head is then just before the cut).
func (w *Walker) Ends(headSequence int64, headHash string) bool {
	if !w.started {
		seq, prev := w.start()
		if w.maxHead >= seq || (headSequence != 0 || w.cut != nil) && (headSequence != seq-1 || headHash != prev) {
			return w.fail("events were removed: the chain has none where its head and checkpoints say it has")
		}
		return true
	}
	if w.seq != headSequence || w.hash != headHash || w.maxHead > w.seq {
		return w.fail("the chain ends before its head or its newest checkpoint: its newest events were removed")
	}
	return true
}
