// Package password hashes passwords with argon2id (PHC string format), verifies them in
// constant time and states the strength rule new passwords must meet.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes (OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane).
const (
	Memory  uint32 = 19 * 1024 // KiB
	Time    uint32 = 2
	Threads uint8  = 1
	saltLen        = 16
	keyLen         = 32
)

// Length bounds of a password, in characters.
const (
	MinLength = 12
	MaxLength = 256
)

// Rule is the strength rule, worded for clients.
const Rule = "a password must be 12 to 256 characters long and mix at least two kinds of " +
	"character: lower-case letters, upper-case letters, digits, and symbols or spaces"

// ErrMalformedHash means a stored hash is not an argon2id PHC string we can read.
var ErrMalformedHash = errors.New("password: malformed argon2id hash")

// slots bounds concurrent hashing: each hash holds 19 MiB, so a burst of logins must not
// turn into a burst of memory.
var slots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// Check returns nil if pw meets Rule, or an error whose text is Rule.
func Check(pw string) error {
	n := utf8.RuneCountInString(pw)
	if !utf8.ValidString(pw) || n < MinLength || n > MaxLength {
		return errors.New(Rule)
	}
	var lower, upper, digit, other bool
	for _, r := range pw {
		switch {
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
	}
	kinds := 0
	for _, k := range []bool{lower, upper, digit, other} {
		if k {
			kinds++
		}
	}
	if kinds < 2 {
		return errors.New(Rule)
	}
	return nil
}

// Hash returns the PHC string of pw with a fresh salt:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>, both unpadded standard base64.
func Hash(pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := derive(pw, salt, Time, Memory, Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, Memory, Time, Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches the PHC string encoded. The parameters come from the
// string, so hashes made with older parameters keep verifying.
func Verify(pw, encoded string) (bool, error) {
	p, err := parse(encoded)
	if err != nil {
		return false, err
	}
	key := derive(pw, p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

var b64 = base64.RawStdEncoding

func derive(pw string, salt []byte, t, m uint32, p uint8, n uint32) []byte {
	slots <- struct{}{}
	defer func() { <-slots }()
	return argon2.IDKey([]byte(pw), salt, t, m, p, n)
}

type params struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parse(encoded string) (params, error) {
	var p params
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, ErrMalformedHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, ErrMalformedHash
	}
	// Bounds keep a corrupt row from asking for gigabytes or forever.
	if p.memory < 8 || p.memory > 1<<18 || p.time < 1 || p.time > 16 || threads < 1 || threads > 16 {
		return p, ErrMalformedHash
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, ErrMalformedHash
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, ErrMalformedHash
	}
	return p, nil
}
