package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/requestid"
)

// TestBrowserPaths: the REST edge answers preflights, and names the Origin back, on the
// routes a gateway lists in BrowserPaths and on no other; the handler of the route still
// decides the request itself.
func TestBrowserPaths(t *testing.T) {
	route := func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.WriteHeader(http.StatusForbidden) // as the handler judging the origin may answer
	}
	h, err := NewHTTPHandler(context.Background(), HTTPConfig{Gateways: []Gateway{{
		BrowserPaths: []string{"/v1/session-keys"},
		Register: func(_ context.Context, mux *runtime.ServeMux, _ *grpc.ClientConn) error {
			if err := mux.HandlePath("POST", "/v1/session-keys", route); err != nil {
				return err
			}
			return mux.HandlePath("POST", "/v1/keys", route)
		},
	}}})
	require.NoError(t, err)
	const page = "https://app.example.com"
	serve := func(method, path string, preflight bool) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.Header.Set("Origin", page)
		if preflight {
			r.Header.Set("Access-Control-Request-Method", "POST")
			r.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	rec := serve(http.MethodOptions, "/v1/session-keys", true)
	require.Equal(t, http.StatusNoContent, rec.Code)
	require.Equal(t, page, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Equal(t, "POST", rec.Header().Get("Access-Control-Allow-Methods"))
	require.Equal(t, "Authorization, Content-Type, X-Request-Id", rec.Header().Get("Access-Control-Allow-Headers"))
	require.Equal(t, "600", rec.Header().Get("Access-Control-Max-Age"))
	require.NotEmpty(t, rec.Header().Get(requestid.Header), "the edge still gives every answer a request id")

	// A header refused before the route still reaches the page, which may read it.
	bad := httptest.NewRequest(http.MethodPost, "/v1/session-keys", nil)
	bad.Header.Set("Origin", page)
	bad.Header.Set("Authorization", "Bearer \u00e9")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, bad)
	require.Equal(t, http.StatusBadRequest, rec.Code)
	require.Equal(t, page, rec.Header().Get("Access-Control-Allow-Origin"))

	rec = serve(http.MethodPost, "/v1/session-keys", false)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Equal(t, page, rec.Header().Get("Access-Control-Allow-Origin"))
	require.Contains(t, rec.Header().Get("Access-Control-Expose-Headers"), "X-Request-Id")

	// Other routes stay as they were: no preflight answer, no CORS header.
	rec = serve(http.MethodOptions, "/v1/keys", true)
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code, rec.Body.String())
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
	rec = serve(http.MethodPost, "/v1/keys", false)
	require.Equal(t, http.StatusForbidden, rec.Code)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
	// Nor a path that merely starts like one.
	rec = serve(http.MethodOptions, "/v1/session-keys/x", true)
	require.Empty(t, rec.Header().Get("Access-Control-Allow-Origin"))
}
