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

// Walker checks a chain one event at a time, in sequence order. The first event it sees
// need not be the chain's first: retention deletes the oldest events, so the walk trusts
// the first remaining event's prev_hash and sequence and checks everything from there on.
type Walker struct {
	h       *Hasher
	started bool
	seq     int64
	hash    string
	// Checked counts the events seen, including a bad one.
	Checked int64
}

// NewWalker returns a walker at the start of a chain.
func NewWalker() *Walker { return &Walker{h: NewHasher()} }

// Next checks one event: its hash must match its content and prev_hash, and (after the
// first) its prev_hash must be the previous event's hash and its sequence the next one.
func (w *Walker) Next(l Link, c *Content) bool {
	w.Checked++
	if w.started && (l.Sequence != w.seq+1 || l.PrevHash != w.hash) {
		return false
	}
	if w.h.Hash(l.PrevHash, c) != l.Hash {
		return false
	}
	w.started, w.seq, w.hash = true, l.Sequence, l.Hash
	return true
}

// Ends reports whether the walk ended where the chain's head says it does: the last event
// seen must be the head, or events were removed from the chain's end. A walk that saw no
// event ends anywhere (retention may have removed them all).
func (w *Walker) Ends(headSequence int64, headHash string) bool {
	return !w.started || w.seq == headSequence && w.hash == headHash
}
