// Package grant is the contract between the gateway's verification (which decides whether
// a request's key may ingest) and its ingest handlers (which decode and publish the data).
package grant

import "context"

// Grant is what a verified key allows: who the data belongs to and where it goes.
type Grant struct {
	KeyID       string
	AccountID   string
	ProjectID   string
	Environment string
	// KeyType is the key type's name; Anonymous routes data to the anonymous stream.
	KeyType   string
	Anonymous bool
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

// Authorizer decides whether a request may ingest. Its errors are *apierr.Error values:
// unauthenticated (401), origin_not_allowed / insufficient_capability / account_suspended
// (403), rate_limited (429, with RetryAfter) or unavailable (503, with RetryAfter).
type Authorizer interface {
	Authorize(ctx context.Context, req Request) (Grant, error)
}
