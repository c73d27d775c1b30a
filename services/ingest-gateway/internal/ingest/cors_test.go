package ingest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCORS(t *testing.T) {
	reached := 0
	h := CORS(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++; w.WriteHeader(200) }))

	pre := httptest.NewRequest(http.MethodOptions, "/v1/traces", nil)
	pre.Header.Set("Origin", "https://app.example.com")
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, pre)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, "https://app.example.com", rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Get("Access-Control-Allow-Headers"), "Authorization")
	require.Equal(t, 0, reached, "a preflight never reaches verification")

	post := httptest.NewRequest(http.MethodPost, "/v1/traces", nil)
	post.Header.Set("Origin", "https://app.example.com")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	require.Equal(t, 1, reached)
	require.Equal(t, "https://app.example.com", rec.Header().Get("Access-Control-Allow-Origin"))
	// A page may read the request id, the retry delay and a claimed key's notice.
	for _, h := range []string{"X-Request-Id", "Retry-After", "Latchkey-Key-Notice"} {
		require.Contains(t, rec.Header().Get("Access-Control-Expose-Headers"), h)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/traces", nil))
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"), "no Origin, no CORS headers")
}
