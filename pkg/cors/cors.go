// Package cors is how Latchkey's HTTP listeners let browser pages call them: one rule, used
// by the ingest gateway (every route) and by the management REST edge (the routes a page
// may call, POST /v1/session-keys). A preflight carries no credential, so it is answered
// for any origin; whether the origin may really use a key or mint one is decided by the
// handler of the request that follows (403 origin_not_allowed), which alone knows the
// project's allowed_origins. Responses name the origin back, so that the page may read
// them, errors included.
package cors

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is what a preflight answers.
type Policy struct {
	// Methods are Access-Control-Allow-Methods, e.g. POST.
	Methods []string
	// Headers are Access-Control-Allow-Headers: the request headers a page may send.
	Headers []string
	// Expose are Access-Control-Expose-Headers: the response headers a page may read.
	Expose []string
	// MaxAge is how long a browser may keep a preflight's answer (Access-Control-Max-Age,
	// whole seconds).
	MaxAge time.Duration
}

// Wrap answers preflights and marks every response to a request with an Origin header as
// readable by that origin; requests without an Origin (not from a browser) pass through
// untouched. A preflight (OPTIONS with Access-Control-Request-Method) is answered 204
// here and never reaches next.
func (p Policy) Wrap(next http.Handler) http.Handler {
	methods, headers, expose := strings.Join(p.Methods, ", "), strings.Join(p.Headers, ", "), strings.Join(p.Expose, ", ")
	maxAge := strconv.Itoa(int(p.MaxAge / time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", methods)
			h.Set("Access-Control-Allow-Headers", headers)
			h.Set("Access-Control-Max-Age", maxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if expose != "" {
			h.Set("Access-Control-Expose-Headers", expose)
		}
		next.ServeHTTP(w, r)
	})
}
