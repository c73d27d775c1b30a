// Package pagetoken makes and reads the page tokens of every paginated list (keys
// ListKeys, accounts ListProjects, audit ListEvents): where the next page starts, bound to
// the listing that issued it (the list, the account, the filters) and sealed with a MAC
// under a server key. A token reused with other filters, by another account or on another
// list, and one made or altered by hand, does not decode: the caller answers
// invalid_argument rather than serve a page from the wrong place.
//
// Layout, before unpadded base64url: a version byte, the position (opaque to this
// package, at most the Codec's MaxPosition bytes), then the first 16 bytes of
// HMAC-SHA-256(key, binding || version || position), where binding is each bound string
// preceded by its length as a uvarint, so no two bindings run together alike. The token
// is not encrypted: a client can read the position (a last id, a time), never change it.
package pagetoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

const (
	version = 1
	macLen  = 16
)

// ErrInvalid is Decode's only error: the token was not issued by this server for this
// binding, or was altered since.
var ErrInvalid = errors.New("pagetoken: not a page token issued for this listing")

// Codec makes and reads page tokens under one server key.
type Codec struct {
	key [sha256.Size]byte
	// maxPosition bounds what Decode reads at all.
	maxPosition int
}

// New returns a codec keyed by secret (a server secret every replica shares, such as the
// operator token; changing it invalidates tokens in flight). maxPosition bounds a
// position in bytes.
func New(secret string, maxPosition int) *Codec {
	return &Codec{key: sha256.Sum256([]byte("latchkey.pagetoken\x00" + secret)), maxPosition: maxPosition}
}

// Encode returns the token of position in the listing named by binding: the list's name
// first (e.g. "keys.ListKeys"), then the account and every filter value, in a fixed order.
func (c *Codec) Encode(position []byte, binding ...string) string {
	b := make([]byte, 0, 1+len(position)+macLen)
	b = append(b, version)
	b = append(b, position...)
	b = append(b, c.mac(binding, b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the position of a token Encode made with the same binding, or ErrInvalid.
func (c *Codec) Decode(token string, binding ...string) ([]byte, error) {
	if base64.RawURLEncoding.DecodedLen(len(token)) > 1+c.maxPosition+macLen {
		return nil, ErrInvalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	// Only the one spelling Encode writes: the decoder would skip line breaks.
	if err != nil || len(b) < 1+macLen || b[0] != version || base64.RawURLEncoding.EncodeToString(b) != token {
		return nil, ErrInvalid
	}
	body, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, c.mac(binding, body)) {
		return nil, ErrInvalid
	}
	return body[1:], nil
}

func (c *Codec) mac(binding []string, body []byte) []byte {
	m := hmac.New(sha256.New, c.key[:])
	var n [binary.MaxVarintLen64]byte
	for _, s := range binding {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		m.Write([]byte(s))
	}
	m.Write(body)
	return m.Sum(nil)[:macLen]
}
