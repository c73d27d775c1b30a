// Package ids makes and checks Latchkey's resource ids: a type prefix and a ULID, so ids
// sort by creation time (pagination uses that) and say what they name.
package ids

import (
	"crypto/rand"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Prefixes of every id kind.
const (
	Account = "acc_"
	User    = "usr_"
	Session = "ses_"
	Project = "prj_"
	Key     = "key_"
	Event   = "evt_"
	Audit   = "aud_"
	Request = "req_"
)

// New returns prefix + a fresh ULID in lower case.
func New(prefix string) string {
	return prefix + strings.ToLower(ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String())
}

// Valid reports whether s is an id of that prefix.
func Valid(prefix, s string) bool {
	if len(s) != len(prefix)+ulid.EncodedSize || !strings.HasPrefix(s, prefix) {
		return false
	}
	_, err := ulid.ParseStrict(s[len(prefix):])
	return err == nil
}
