package keyformat

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"hash"
	"sync"
)

// MinPepperLen is the shortest pepper NewHasher accepts: the pepper is what keeps
// a stolen hash table from being checked against guesses, so it gets a full
// SHA-256 block of strength.
const MinPepperLen = 32

// Hasher computes the keyed hash that is stored instead of a key. HMAC-SHA-256,
// not a slow KDF: keys are high-entropy, so stretching buys nothing and would cost
// every request. Safe for concurrent use.
type Hasher struct {
	pool sync.Pool
}

// hmacState is one pre-keyed HMAC and a scratch buffer, pooled so that Hash
// allocates nothing.
type hmacState struct {
	mac hash.Hash
	buf [256]byte
}

// NewHasher keys a Hasher with the server-side pepper (copied).
func NewHasher(pepper []byte) (*Hasher, error) {
	if len(pepper) < MinPepperLen {
		return nil, errors.New("keyformat: pepper must be at least 32 bytes")
	}
	p := append([]byte(nil), pepper...)
	h := &Hasher{}
	h.pool.New = func() any { return &hmacState{mac: hmac.New(sha256.New, p)} }
	return h, nil
}

// Hash returns HMAC-SHA-256(pepper, key).
func (h *Hasher) Hash(key string) [32]byte {
	st := h.pool.Get().(*hmacState)
	// Copy through the state's buffer: converting key to []byte for the
	// interface call would allocate.
	for len(key) > 0 {
		n := copy(st.buf[:], key)
		st.mac.Write(st.buf[:n])
		key = key[n:]
	}
	var out [32]byte
	copy(out[:], st.mac.Sum(st.buf[:0]))
	clear(st.buf[:])
	st.mac.Reset()
	h.pool.Put(st)
	return out
}

// Equal compares two hashes in constant time.
func Equal(a, b [32]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
