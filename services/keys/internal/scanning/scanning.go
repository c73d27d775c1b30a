// Package scanning holds what the keys service needs to trust a leak report from GitHub's
// secret scanning partner program: the public keys reports are signed with and the
// signature check (docs/keys.md, "Leaked keys").
//
// A report is signed with ECDSA on P-256 over the SHA-256 of its raw body; the request
// names the key in Github-Public-Key-Identifier and carries the signature, base64 of its
// ASN.1 DER form, in Github-Public-Key-Signature. GitHub publishes its keys as
// {"public_keys": [{"key_identifier", "key", "is_current"}]} with key a PEM "PUBLIC KEY"
// (api.github.com/meta/public_keys/secret_scanning); PublicKeys reads that document or
// its bare array.
package scanning

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// The request headers of a signed report, as GitHub sends them (HTTP header names are
// case-insensitive).
const (
	HeaderKeyID     = "Github-Public-Key-Identifier"
	HeaderSignature = "Github-Public-Key-Signature"
)

// Bounds of what a report's headers may carry: longer ones are refused before any work.
const (
	// MaxKeyIDLen bounds a key identifier (GitHub's are 64 hex characters).
	MaxKeyIDLen = 256
	// MaxSignatureLen bounds the base64 signature (a P-256 DER signature is at most 72
	// bytes, 96 in base64).
	MaxSignatureLen = 256
)

// PublicKeys are the keys reports may be signed with, by identifier. The zero value holds
// none. It is immutable once read and safe for concurrent use.
type PublicKeys struct {
	keys []publicKey
}

type publicKey struct {
	id  string
	key *ecdsa.PublicKey
}

// jsonKey is one entry as GitHub publishes it; other fields (is_current) are ignored.
type jsonKey struct {
	KeyIdentifier *string `json:"key_identifier"`
	Key           *string `json:"key"`
}

// UnmarshalText reads LATCHKEY_SCANNING_PUBLIC_KEYS: a JSON array of {"key_identifier",
// "key"} with key a PEM-encoded ECDSA P-256 public key ("-----BEGIN PUBLIC KEY-----"), or
// GitHub's whole document, {"public_keys": [...]}. Empty text, or an empty array, is no
// keys. Every entry must have a unique, non-empty identifier of at most MaxKeyIDLen
// printable ASCII characters and a P-256 key; the first entry that does not is the error,
// named by its position and identifier. Unknown fields are ignored (GitHub adds
// is_current).
func (p *PublicKeys) UnmarshalText(text []byte) error {
	*p = PublicKeys{}
	text = bytes.TrimSpace(text)
	if len(text) == 0 {
		return nil
	}
	var entries []jsonKey
	if text[0] == '{' {
		var doc struct {
			PublicKeys *[]jsonKey `json:"public_keys"`
		}
		if err := json.Unmarshal(text, &doc); err != nil || doc.PublicKeys == nil {
			return errors.New(`want a JSON array of {"key_identifier", "key"} or {"public_keys": [...]}`)
		}
		entries = *doc.PublicKeys
	} else if err := json.Unmarshal(text, &entries); err != nil {
		return errors.New(`want a JSON array of {"key_identifier", "key"} (key a PEM public key)`)
	}
	keys := make([]publicKey, 0, len(entries))
	seen := map[string]bool{}
	for i, e := range entries {
		if e.KeyIdentifier == nil || !validID(*e.KeyIdentifier) {
			return fmt.Errorf("entry %d: key_identifier must be 1 to %d printable ASCII characters", i, MaxKeyIDLen)
		}
		id := *e.KeyIdentifier
		if seen[id] {
			return fmt.Errorf("entry %d: key_identifier %q is listed twice", i, id)
		}
		seen[id] = true
		if e.Key == nil {
			return fmt.Errorf("entry %d (%s): key is missing", i, id)
		}
		key, err := parsePEM(*e.Key)
		if err != nil {
			return fmt.Errorf("entry %d (%s): %w", i, id, err)
		}
		keys = append(keys, publicKey{id: id, key: key})
	}
	p.keys = keys
	return nil
}

// parsePEM reads one PEM "PUBLIC KEY" block holding an ECDSA P-256 key.
func parsePEM(s string) (*ecdsa.PublicKey, error) {
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New(`key must be one PEM block "-----BEGIN PUBLIC KEY-----"`)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, errors.New("key is not a PKIX public key")
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, errors.New("key must be an ECDSA P-256 public key")
	}
	return ec, nil
}

func validID(id string) bool {
	if id == "" || len(id) > MaxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

// Len is how many keys there are; with none, reports cannot be trusted and the endpoint is
// off.
func (p *PublicKeys) Len() int { return len(p.keys) }

// IDs are the keys' identifiers, in the configured order.
func (p *PublicKeys) IDs() []string {
	out := make([]string, len(p.keys))
	for i, k := range p.keys {
		out[i] = k.id
	}
	return out
}

// Errors of Verify; each means 401. Messages name no input.
var (
	ErrUnsigned     = errors.New("the report is not signed: Github-Public-Key-Identifier and Github-Public-Key-Signature are required")
	ErrUnknownKey   = errors.New("the report is signed with a key this service does not know (Github-Public-Key-Identifier)")
	ErrBadSignature = errors.New("the report's signature does not verify (Github-Public-Key-Signature: base64 of an ASN.1 DER ECDSA signature of the SHA-256 of the raw body)")
)

// Key finds the key named id. Every configured identifier is compared, in constant time,
// so the answer's timing says nothing about which came close. ErrUnsigned for an empty id,
// ErrUnknownKey for one not configured.
func (p *PublicKeys) Key(id string) (*ecdsa.PublicKey, error) {
	switch {
	case id == "":
		return nil, ErrUnsigned
	case len(id) > MaxKeyIDLen:
		return nil, ErrUnknownKey
	}
	var found *ecdsa.PublicKey
	for _, k := range p.keys {
		if subtle.ConstantTimeCompare([]byte(k.id), []byte(id)) == 1 {
			found = k.key
		}
	}
	if found == nil {
		return nil, ErrUnknownKey
	}
	return found, nil
}

// Verify checks signature (the Github-Public-Key-Signature header: base64 of an ASN.1 DER
// ECDSA signature) of body, exactly the bytes received, under key. ErrUnsigned for an empty
// signature, ErrBadSignature for one that is overlong, not base64 or does not verify.
func Verify(key *ecdsa.PublicKey, signature string, body []byte) error {
	signature = strings.TrimSpace(signature)
	switch {
	case signature == "":
		return ErrUnsigned
	case len(signature) > MaxSignatureLen:
		return ErrBadSignature
	}
	der, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrBadSignature
	}
	digest := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(key, digest[:], der) {
		return ErrBadSignature
	}
	return nil
}
