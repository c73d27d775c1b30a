package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testPolicy = Policy{
	Methods: []string{"POST"},
	Headers: []string{"Authorization", "Content-Type"},
	Expose:  []string{"X-Request-Id", "Retry-After"},
	MaxAge:  10 * time.Minute,
}

// TestWrap: preflights are answered for any origin without reaching the handler; the
// requests that follow reach it and name their origin back; requests without an Origin
// get no CORS headers at all.
func TestWrap(t *testing.T) {
	reached := 0
	h := testPolicy.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached++
		w.WriteHeader(http.StatusForbidden)
	}))

	pre := httptest.NewRequest(http.MethodOptions, "/x", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, "https://app.example.com", rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "POST", rec.Header().Get("Access-Control-Allow-Methods"))
	require.Equal(t, "Authorization, Content-Type", rec.Header().Get("Access-Control-Allow-Headers"))
	require.Equal(t, "600", rec.Header().Get("Access-Control-Max-Age"))
	require.Equal(t, "Origin", rec.Header().Get("Vary"))
	require.Equal(t, 0, reached, "a preflight never reaches the handler")

	post := httptest.NewRequest(http.MethodPost, "/x", nil)
	post.Header.Set("Origin", "https://app.example.com")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	require.Equal(t, 1, reached)
	require.Equal(t, http.StatusForbidden, rec.Code, "the handler decides")
	require.Equal(t, "https://app.example.com", rec.Header().Get("Access-Control-Allow-Origin"), "errors are readable too")
	require.Equal(t, "X-Request-Id, Retry-After", rec.Header().Get("Access-Control-Expose-Headers"))
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Methods"))

	// An OPTIONS that is no preflight is the handler's.
	opt := httptest.NewRequest(http.MethodOptions, "/x", nil)
	opt.Header.Set("Origin", "https://app.example.com")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, opt)
	require.Equal(t, 2, reached)

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", nil))
	require.Equal(t, 3, reached)
	for k := range rec.Header() {
		require.NotContains(t, k, "Access-Control", "no Origin, no CORS headers")
	}
	require.Empty(t, rec.Header().Get("Vary"))
}
