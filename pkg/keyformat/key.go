package keyformat

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

const (
	// MaxKeyLen is the longest input Parse looks at; anything longer is rejected
	// before any work, so oversized headers cost nothing.
	MaxKeyLen = 256
	// ChecksumLen is the number of base62 characters of a checksum (62^6 > 2^32).
	ChecksumLen = 6
	// DisplayBodyLen is how much of the body a listing may show.
	DisplayBodyLen = 8
	// LegacyBodyMin is the shortest body of a key under a legacy prefix
	// (Type.LegacyPrefixes), in characters of [A-Za-z0-9_-].
	LegacyBodyMin = 16
	// LegacyBodyMax is the longest such body.
	LegacyBodyMax = 128
)

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Sentinel errors of Parse; test with errors.Is. All three mean "401 without a
// lookup"; they are distinct for metrics and debugging. Messages never contain
// the key.
var (
	ErrUnknownPrefix = errors.New("keyformat: unknown key prefix")
	ErrMalformed     = errors.New("keyformat: malformed key")
	ErrChecksum      = errors.New("keyformat: key checksum mismatch")
)

// parseError adds the reason to a sentinel. The values are preallocated so that
// a failing Parse allocates nothing.
type parseError struct {
	kind error
	msg  string
}

func (e *parseError) Error() string { return e.msg }
func (e *parseError) Unwrap() error { return e.kind }

var (
	errEmpty    = &parseError{ErrMalformed, "keyformat: malformed key: empty"}
	errTooLong  = &parseError{ErrMalformed, "keyformat: malformed key: longer than 256 bytes"}
	errLength   = &parseError{ErrMalformed, "keyformat: malformed key: wrong length for its type"}
	errAlphabet = &parseError{ErrMalformed, "keyformat: malformed key: character outside the alphabet"}
	errNoPrefix = &parseError{ErrUnknownPrefix, "keyformat: unknown key prefix: key has no prefix"}
	errPrefix   = &parseError{ErrUnknownPrefix, "keyformat: unknown key prefix"}
	errChecksum = &parseError{ErrChecksum, "keyformat: key checksum mismatch"}
)

// legacyAlphabet is what the body of a legacy key may hold: [A-Za-z0-9_-].
const legacyAlphabet = base62Alphabet + "_-"

// Lookup tables: digit value+1 (0 = not in the alphabet), so that the zero value
// of the array rejects everything else; legacyOK is true for legacyAlphabet.
var base62Val, hexVal, legacyOK = func() (b62, hx [256]uint8, legacy [256]bool) {
	for i := 0; i < len(base62Alphabet); i++ {
		b62[base62Alphabet[i]] = uint8(i + 1)
	}
	for i, c := range "0123456789abcdef" {
		hx[c] = uint8(i + 1)
	}
	for i := 0; i < len(legacyAlphabet); i++ {
		legacy[legacyAlphabet[i]] = true
	}
	return
}()

// Key is a parsed key. Its strings point into the parsed input. Key formats
// itself as its display prefix so that a stray log line never carries a secret.
type Key struct {
	// Type is the key's type; shared, must not be modified.
	Type *Type
	// Prefix is the prefix as presented, which may be a legacy prefix.
	Prefix string
	// Body is the random part, without the checksum. It is secret.
	Body string
	// Legacy reports that Prefix is one of Type.LegacyPrefixes.
	Legacy bool
}

// String returns the display prefix, never the secret.
func (k Key) String() string { return DisplayPrefix(k) }

// GoString keeps %#v from printing the secret too.
func (k Key) GoString() string { return "keyformat.Key{" + DisplayPrefix(k) + "…}" }

// DisplayPrefix is what listings may show: the prefix and the first 8 characters
// of the body, never more.
func DisplayPrefix(k Key) string {
	b := k.Body
	if len(b) > DisplayBodyLen {
		b = b[:DisplayBodyLen]
	}
	return k.Prefix + b
}

// Generate mints a new key of the named type with its current prefix.
func (r *Registry) Generate(typeName string) (string, error) {
	t, ok := r.byName[typeName]
	if !ok {
		return "", fmt.Errorf("keyformat: unknown key type %q", typeName)
	}
	p, bodyLen := len(t.Prefix), t.BodyLen()
	buf := make([]byte, t.KeyLen(t.Prefix))
	copy(buf, t.Prefix)
	body := buf[p : p+bodyLen]
	switch t.Encoding {
	case EncodingHex:
		raw := make([]byte, t.RandomBytes)
		if _, err := rand.Read(raw); err != nil {
			return "", fmt.Errorf("keyformat: reading randomness: %w", err)
		}
		hex.Encode(body, raw)
	default:
		if err := fillBase62(body); err != nil {
			return "", err
		}
	}
	if t.Checksum {
		putChecksum(buf[p+bodyLen:], crc32.ChecksumIEEE(buf[:p+bodyLen]))
	}
	return string(buf), nil
}

// fillBase62 draws each character uniformly: bytes of 248 and above are rejected
// so that byte%62 has no bias (248 = 4*62).
func fillBase62(dst []byte) error {
	var pool [64]byte
	i := 0
	for i < len(dst) {
		if _, err := rand.Read(pool[:]); err != nil {
			return fmt.Errorf("keyformat: reading randomness: %w", err)
		}
		for _, b := range pool {
			if b >= 248 {
				continue
			}
			dst[i] = base62Alphabet[b%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
	return nil
}

// putChecksum writes v as ChecksumLen base62 digits, most significant first.
func putChecksum(dst []byte, v uint32) {
	n := uint64(v)
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = base62Alphabet[n%62]
		n /= 62
	}
}

// crcTables are slicing-by-8 tables for CRC32-IEEE. hash/crc32 would be faster
// still, but it takes a []byte through a function variable, so the bytes escape and
// every Parse would allocate; eight bytes per step keeps the checksum a few ns.
var crcTables = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 8; k++ {
			c = t[0][c&0xff] ^ c>>8
			t[k][i] = c
		}
	}
	return t
}()

// crcString is CRC32-IEEE over a string, so Parse needs no []byte conversion.
func crcString(s string) uint32 {
	t := &crcTables
	crc := ^uint32(0)
	for len(s) >= 8 {
		crc ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		crc = t[0][s[7]] ^ t[1][s[6]] ^ t[2][s[5]] ^ t[3][s[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xff] ^ t[6][crc>>8&0xff] ^ t[7][crc&0xff]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		crc = t[0][byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

// Parse checks a presented key's prefix, length, alphabet and checksum: everything
// that can be known without a lookup. It allocates nothing, success or failure,
// because it runs on every request before anything else.
//
// A current prefix is everything up to and including the key's last '_' (bodies never
// hold one). A key whose prefix so found is no registered one may still be a legacy
// key, whose body may hold '_': it is parsed under the legacy prefix it starts with
// (NewRegistry makes sure no prefix starts with a legacy prefix, so there is at most
// one), by the legacy rule: LegacyBodyMin to LegacyBodyMax characters of
// [A-Za-z0-9_-] and no checksum.
func (r *Registry) Parse(s string) (Key, error) {
	switch {
	case len(s) == 0:
		return Key{}, errEmpty
	case len(s) > MaxKeyLen:
		return Key{}, errTooLong
	}
	i := strings.LastIndexByte(s, '_')
	if i < 0 {
		return Key{}, errNoPrefix
	}
	prefix := s[:i+1]
	info := r.lookupPrefix(prefix)
	if info == nil {
		info = r.legacyPrefixOf(s)
	}
	switch {
	case info == nil:
		return Key{}, errPrefix
	case info.legacy:
		return parseLegacy(s, info)
	}
	if len(s) != info.keyLen {
		return Key{}, errLength
	}
	end := len(prefix) + info.bodyLen
	body := s[len(prefix):end]
	table := &base62Val
	if info.hex {
		table = &hexVal
	}
	for j := 0; j < len(body); j++ {
		if table[body[j]] == 0 {
			return Key{}, errAlphabet
		}
	}
	if info.checksum {
		var v uint64
		for j := end; j < len(s); j++ {
			d := base62Val[s[j]]
			if d == 0 {
				return Key{}, errAlphabet
			}
			v = v*62 + uint64(d-1)
		}
		if v != uint64(crcString(s[:end])) {
			return Key{}, errChecksum
		}
	}
	return Key{Type: info.typ, Prefix: prefix, Body: body, Legacy: info.legacy}, nil
}

// parseLegacy is Parse of s under info, a legacy prefix s starts with.
func parseLegacy(s string, info *prefixInfo) (Key, error) {
	body := s[len(info.prefix):]
	if len(body) < LegacyBodyMin || len(body) > LegacyBodyMax {
		return Key{}, errLength
	}
	for j := 0; j < len(body); j++ {
		if !legacyOK[body[j]] {
			return Key{}, errAlphabet
		}
	}
	return Key{Type: info.typ, Prefix: info.prefix, Body: body, Legacy: true}, nil
}

// legacyPrefixOf finds the legacy prefix s starts with, nil when none does.
func (r *Registry) legacyPrefixOf(s string) *prefixInfo {
	for _, info := range r.legacy {
		if strings.HasPrefix(s, info.prefix) {
			return info
		}
	}
	return nil
}

// lookupPrefix finds a prefix's info: by scanning when there are few, by map otherwise.
func (r *Registry) lookupPrefix(prefix string) *prefixInfo {
	if len(r.prefixes) > 8 {
		return r.byPrefix[prefix]
	}
	for _, info := range r.prefixes {
		if info.prefix == prefix {
			return info
		}
	}
	return nil
}
