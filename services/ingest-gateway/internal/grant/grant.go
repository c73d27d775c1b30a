// Package grant is the contract between the gateway's verification (which decides whether
// a request's key may ingest) and its ingest handlers (which decode and publish the data).
package grant

import (
	"context"
	"time"
)

// NoticeHeader is the HTTP header (and, lower-cased, the gRPC response header) that carries
// Grant.Notice on every answer to a request whose key was accepted.
const NoticeHeader = "Latchkey-Key-Notice"

// ClaimNotice is the notice of an anonymous key claimed into an account, working until
// graceUntil: "claimed; grace_until=<RFC 3339, UTC, whole seconds>" (DESIGN "Seed schemes",
// Claim), so that SDKs can remind their user to switch to the new key.
func ClaimNotice(graceUntil time.Time) string {
	return "claimed; grace_until=" + graceUntil.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// Grant is what a verified key allows: who the data belongs to and where it goes.
type Grant struct {
	KeyID       string
	AccountID   string
	ProjectID   string
	Environment string
	// KeyType is the key type's name; Anonymous routes data to the anonymous stream: an
	// anonymous key's, until it is claimed (then its data goes to the account it was
	// claimed into, like any key's).
	KeyType   string
	Anonymous bool
	// Notice, when set, goes back to the client in NoticeHeader with every answer
	// (ClaimNotice for a claimed anonymous key in its grace).
	Notice string
	// ServerID is the server a collector key belongs to (POST /v1/servers); "" for other
	// keys. The data is stored with it (the Latchkey-Server-Id header).
	ServerID string
}

// Request is what verification looks at.
type Request struct {
	// Key is the presented key: from `Authorization: Bearer <key>` or `x-api-key`.
	Key string
	// Origin is the Origin header, "" when absent (non-browser clients).
	Origin string
	// ClientIP is the caller's address, for limiting failed authentications.
	ClientIP string
}

// Authorizer decides whether a request may ingest. With an error, the Grant holds at most
// a Notice (a working key refused for this one request still says it was claimed). Its
// errors are *apierr.Error values:
// unauthenticated (401), origin_not_allowed / insufficient_capability / account_suspended
// (403), rate_limited (429, with RetryAfter) or unavailable (503, with RetryAfter).
type Authorizer interface {
	Authorize(ctx context.Context, req Request) (Grant, error)
}
