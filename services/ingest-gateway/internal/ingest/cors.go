package ingest

import (
	"net/http"
	"time"

	"github.com/latchkey/latchkey/pkg/cors"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// corsPolicy is what the gateway's preflights answer: POST with the headers an OTLP
// exporter or SDK sends.
var corsPolicy = cors.Policy{
	Methods: []string{"POST"},
	Headers: []string{"Authorization", "Content-Type", "Content-Encoding", "X-Api-Key", "X-Request-Id"},
	// A browser SDK reads the claim notice as any other: a page with a claimed anonymous
	// key must be able to see it.
	Expose: []string{"X-Request-Id", "Retry-After", grant.NoticeHeader},
	MaxAge: 10 * time.Minute,
}

// CORS lets browser SDKs send data, by the shared rule (package cors). A preflight carries
// no key, so it is answered for any origin; the request that follows is refused (403
// origin_not_allowed) unless its key's project allows the origin. Responses name the origin
// back so the browser may read them.
func CORS(next http.Handler) http.Handler { return corsPolicy.Wrap(next) }
