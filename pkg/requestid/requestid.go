// Package requestid carries the request id (docs/rest.md, "Conventions"): read from
// X-Request-Id (HTTP) or x-request-id (gRPC metadata) when a caller sends a sane one, made
// otherwise, echoed back and put on every log line.
package requestid

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// Header is the HTTP header; MetadataKey the gRPC metadata key.
const (
	Header      = "X-Request-Id"
	MetadataKey = "x-request-id"
)

type ctxKey struct{}

type value struct {
	id       string
	supplied bool
}

// New makes a fresh request id: a ULID like every other id, but its randomness comes from
// the runtime's generator, not crypto/rand. A request id names a request in logs and is
// no secret, and the gateway makes one per request it ingests.
func New() string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(time.Now()))                      // fails only after the year 10889
	binary.LittleEndian.PutUint64(u[6:14], rand.Uint64())          //nolint:gosec // no secret; see above
	binary.LittleEndian.PutUint16(u[14:16], uint16(rand.Uint32())) //nolint:gosec // no secret; see above
	var b [len(ids.Request) + ulid.EncodedSize]byte
	copy(b[:], ids.Request)
	_ = u.MarshalTextTo(b[len(ids.Request):]) // fails only for a short buffer
	for i := len(ids.Request); i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b[:])
}

// Resolve returns raw as the request id if a client may choose it (1 to 128 characters of
// [A-Za-z0-9._:-], holding nothing keyformat.Redact takes for a key) with supplied true,
// else a fresh id, so logs never carry attacker-shaped text and a key pasted into the
// header is neither echoed, logged nor stored.
func Resolve(raw string) (id string, supplied bool) {
	if raw == "" || len(raw) > 128 {
		return New(), false
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == ':'
		if !ok {
			return New(), false
		}
	}
	if keyformat.Redact(raw) != raw {
		return New(), false
	}
	return raw, true
}

// With stores id in ctx; supplied says whether the client chose it (see Resolve).
func With(ctx context.Context, id string, supplied bool) context.Context {
	return context.WithValue(ctx, ctxKey{}, value{id: id, supplied: supplied})
}

// From returns the request id of ctx, or "".
func From(ctx context.Context) string {
	v, _ := ctx.Value(ctxKey{}).(value)
	return v.id
}

// Supplied reports whether the client chose ctx's request id. Only such an id can come
// again with a retry of the same request.
func Supplied(ctx context.Context) bool {
	v, _ := ctx.Value(ctxKey{}).(value)
	return v.supplied
}
