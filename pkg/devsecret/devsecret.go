// Package devsecret keeps the secrets a development run generates (`make run`,
// `make cluster`) in files, so that the next start finds the same ones: a key hashed with
// one pepper does not verify with another, and an audit chain signed with one key does
// not verify with another. Each file holds one secret and a newline, mode 0600.
package devsecret

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kept returns the secret kept in file when valid accepts it, else a new one from
// generate, written to file (mode 0600, its directory made 0700) so that the next start
// finds it. The error is a read or write error of file.
func Kept(file string, generate func() string, valid func(string) bool) (string, error) {
	if b, err := os.ReadFile(file); err == nil && valid(strings.TrimSpace(string(b))) { //nolint:gosec // file is the developer's own setting or a fixed path under .cache, never request input
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v := generate()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keeping a generated secret in %s: %w", file, err)
	}
	return v, nil
}

// Pepper returns the pepper kept in file (LATCHKEY_PEPPER: 48 random characters; a kept
// one of fewer than 32 is replaced).
func Pepper(file string) (string, error) {
	return Kept(file, func() string { return Random(48) }, func(p string) bool { return len(p) >= 32 })
}

// SigningKey returns the audit checkpoint signing key kept in file, as AUDIT_SIGNING_KEY
// takes it: standard base64 of a 32-byte Ed25519 seed.
func SigningKey(file string) (string, error) {
	return Kept(file, newSigningKey, validSigningKey)
}

// OperatorToken returns the operator token kept in file (LATCHKEY_OPERATOR_TOKEN, as
// NewOperatorToken makes).
func OperatorToken(file string) (string, error) {
	return Kept(file, NewOperatorToken, func(t string) bool { return len(t) >= 32 })
}

// NewOperatorToken is a new operator token: "lkop_" and 32 random characters.
func NewOperatorToken() string { return "lkop_" + Random(32) }

// Random returns n random characters of the URL-safe base64 alphabet (6 bits each).
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func newSigningKey() string {
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	return base64.StdEncoding.EncodeToString(seed)
}

func validSigningKey(k string) bool {
	seed, err := base64.StdEncoding.DecodeString(k)
	return err == nil && len(seed) == 32
}
