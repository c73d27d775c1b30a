// Package ids makes and checks Latchkey's resource ids: a type prefix and a ULID, so ids
// sort by creation time (pagination uses that) and say what they name.
package ids

import (
	"crypto/rand"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/latchkey/latchkey/pkg/apierr"
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
	// Server is a server of POST /v1/servers, which holds a collector key.
	Server = "srv_"
)

// New returns prefix + a fresh ULID in lower case.
func New(prefix string) string {
	return prefix + strings.ToLower(ulid.MustNew(ulid.Timestamp(time.Now()), rand.Reader).String())
}

// Valid reports whether s is an id of that prefix exactly as New makes them: the prefix
// and a ULID in lower case. ULIDs are case-insensitive, but an upper-case spelling would
// pass a format check and then match no row, so it is not an id.
func Valid(prefix, s string) bool {
	if len(s) != len(prefix)+ulid.EncodedSize || !strings.HasPrefix(s, prefix) {
		return false
	}
	body := s[len(prefix):]
	if strings.ToLower(body) != body {
		return false
	}
	_, err := ulid.ParseStrict(body)
	return err == nil
}

// Check is Valid as every service answers it: nil, or invalid_argument naming field and
// the shape wanted. It never quotes s, which may be anything a client pasted (a key, say).
func Check(field, prefix, s string) error {
	switch {
	case s == "":
		return apierr.New(apierr.InvalidArgument, "%s is required", field)
	case !Valid(prefix, s):
		return apierr.New(apierr.InvalidArgument, "%s is not an id of the form %s followed by %d lower-case letters and digits", field, prefix, ulid.EncodedSize)
	}
	return nil
}
