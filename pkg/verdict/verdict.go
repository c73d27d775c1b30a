// Package verdict decides whether a known key may be used for a request. The keys service
// (VerifyKey) and the gateways (on a cache hit) decide with this one function, so a key
// means the same thing everywhere. It also owns the key status rule (status.go), in Go and
// in SQL, which the decision starts from (docs/keys.md, "Statuses").
package verdict

import (
	"slices"
	"time"
)

// Code says why a key was or was not accepted. These are the `code` values of VerifyKey.
type Code string

// The codes, in the order they are checked.
const (
	OK                     Code = "ok"
	Malformed              Code = "malformed"
	NotFound               Code = "not_found"
	Revoked                Code = "revoked"
	Expired                Code = "expired"
	AccountSuspended       Code = "account_suspended"
	InsufficientCapability Code = "insufficient_capability"
	OriginNotAllowed       Code = "origin_not_allowed"
)

// Facts are what a decision needs to know about a key.
type Facts struct {
	// Lifetime gives the key's status (Lifetime.Status), the first thing checked.
	Lifetime
	// Capabilities the key holds.
	Capabilities []string
	// Browser says whether the key's type may be used from a browser at all.
	Browser bool
	// BrowserOnly says the key works only from a browser (keyformat.Type.BrowserOnly:
	// session keys): every request needs an Origin, and it must be one of AllowedOrigins.
	BrowserOnly bool
	// AllowedOrigins of the key's project; empty allows any origin (for browser types but
	// browser-only ones, which it allows none).
	AllowedOrigins   []string
	AccountSuspended bool
}

// Decide returns the verdict on using a key with facts f at now, from origin (the request's
// Origin header, "" when there is none) for capability ("" when the caller asks for none).
// The origin is judged by OriginAllowed.
func Decide(f *Facts, now time.Time, origin, capability string) Code {
	if code := f.Status(now).Code(); code != OK {
		return code
	}
	switch {
	case f.AccountSuspended:
		return AccountSuspended
	case capability != "" && !slices.Contains(f.Capabilities, capability):
		return InsufficientCapability
	case !f.OriginAllowed(origin):
		return OriginNotAllowed
	}
	return OK
}

// OriginAllowed is the one origin rule: whether a key with facts f may be used by a request
// from origin (its Origin header, "" when there is none). A request without an Origin is
// refused only for a browser-only key (session keys): origins guard browsers. With an
// Origin, a type not for browsers is refused; a browser-only key needs the origin in
// AllowedOrigins (empty allows none); any other browser key needs it there too, but an
// empty AllowedOrigins allows every origin. POST /v1/session-keys judges the page that
// asks for a session key with it, as the key will be judged.
func (f *Facts) OriginAllowed(origin string) bool {
	switch {
	case origin == "":
		return !f.BrowserOnly
	case !f.Browser:
		return false
	case f.BrowserOnly:
		return slices.Contains(f.AllowedOrigins, origin)
	default:
		return len(f.AllowedOrigins) == 0 || slices.Contains(f.AllowedOrigins, origin)
	}
}
