// Package requestid carries the request id of DESIGN.md: read from X-Request-Id (HTTP) or
// x-request-id (gRPC metadata) when a caller sends a sane one, made otherwise, echoed back
// and put on every log line.
package requestid

import (
	"context"

	"github.com/latchkey/latchkey/pkg/ids"
)

// Header is the HTTP header; MetadataKey the gRPC metadata key.
const (
	Header      = "X-Request-Id"
	MetadataKey = "x-request-id"
)

type ctxKey struct{}

// New makes a fresh request id.
func New() string { return ids.New(ids.Request) }

// Sanitize returns id if a client may choose it (1 to 128 characters of [A-Za-z0-9._:-]),
// else a fresh one, so logs never carry attacker-shaped text.
func Sanitize(id string) string {
	if id == "" || len(id) > 128 {
		return New()
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return New()
		}
	}
	return id
}

// With stores id in ctx.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the request id of ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}
