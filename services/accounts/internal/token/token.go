// Package token makes session tokens and the hashes they are stored and looked up by.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"math/big"
	"strings"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Prefix starts every session token, so scanners and our authenticator recognise one.
const Prefix = auth.SessionTokenPrefix

// bodyLen is 32 random bytes in base62: 62^43 > 2^256, so 43 characters hold them all.
// keyformat declares it, so that keyformat.Redact finds session tokens.
const bodyLen = keyformat.SessionTokenBodyLen

// Len is the length of a session token.
const Len = len(Prefix) + bodyLen

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// New returns a fresh session token: Prefix and 32 bytes from crypto/rand in base62.
func New() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	body := new(big.Int).SetBytes(b).Text(62)
	return Prefix + strings.Repeat("0", bodyLen-len(body)) + body, nil
}

// WellFormed reports whether t has a session token's shape, so garbage is turned away
// without a database lookup.
func WellFormed(t string) bool {
	if len(t) != Len || !strings.HasPrefix(t, Prefix) {
		return false
	}
	for i := len(Prefix); i < len(t); i++ {
		if strings.IndexByte(alphabet, t[i]) < 0 {
			return false
		}
	}
	return true
}

// Hash is what is stored and looked up: SHA-256 of the token. The token carries 256 bits
// of entropy, so a fast hash is enough.
func Hash(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}
