package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// TestForwardedHeadersMustBeCarried: a header the bridge hands to gRPC (Idempotency-Key,
// Origin, Authorization, …) that metadata cannot carry as sent is refused, 400 naming it,
// rather than dropped on the way: a replayed call with a non-ASCII Idempotency-Key would
// otherwise run twice. Sent twice, it is refused too. Other headers are no concern here.
func TestForwardedHeadersMustBeCarried(t *testing.T) {
	reached := 0
	h, err := NewHTTPHandler(context.Background(), HTTPConfig{Gateways: []Gateway{{
		Register: func(_ context.Context, mux *runtime.ServeMux, _ *grpc.ClientConn) error {
			return mux.HandlePath("POST", "/v1/things", func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
				reached++
				w.WriteHeader(http.StatusOK)
			})
		},
	}}})
	require.NoError(t, err)
	serve := func(headers ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/v1/things", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			r.Header.Add(headers[i], headers[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	for _, tc := range []struct{ header, value, second string }{
		{"Idempotency-Key", "kéy", ""},
		{"Origin", "https://exämple.com", ""},
		{"Authorization", "Bearer \x01", ""},
		{"Origin", "https://app.example.com", "https://evil.example.com"},
		{"Idempotency-Key", "a", "b"},
	} {
		headers := []string{tc.header, tc.value}
		if tc.second != "" {
			headers = append(headers, tc.header, tc.second)
		}
		rec := serve(headers...)
		require.Equal(t, http.StatusBadRequest, rec.Code, "%s %q", tc.header, tc.value)
		var body map[string]any
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Equal(t, "invalid_argument", body["error"])
		require.Contains(t, body["message"], tc.header)
	}
	require.Zero(t, reached)
	require.Equal(t, http.StatusOK, serve("Idempotency-Key", "key-1", "Origin", "https://app.example.com", "X-Other", "é").Code)
	require.Equal(t, 1, reached)
	// A User-Agent only informs the audit log: an odd one is cleaned up, never refused.
	require.Equal(t, http.StatusOK, serve("User-Agent", "Android; Galaxy S\u00e9rie", "User-Agent", "second").Code)
	require.Equal(t, 2, reached)
}

// TestBodilessMethods: a body on GET or DELETE, which the bridge would drop unread, is
// refused; the same calls without one, and POST with one, go through.
func TestBodilessMethods(t *testing.T) {
	reached := 0
	h, err := NewHTTPHandler(context.Background(), HTTPConfig{Gateways: []Gateway{{
		Register: func(_ context.Context, mux *runtime.ServeMux, _ *grpc.ClientConn) error {
			ok := func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
				reached++
				w.WriteHeader(http.StatusOK)
			}
			for _, m := range []string{"GET", "DELETE", "POST"} {
				if err := mux.HandlePath(m, "/v1/things/{id}", ok); err != nil {
					return err
				}
			}
			return nil
		},
	}}})
	require.NoError(t, err)
	serve := func(method, body string, chunked bool) int {
		r := httptest.NewRequest(method, "/v1/things/a", strings.NewReader(body))
		if chunked {
			r.ContentLength = -1
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	for _, m := range []string{"GET", "DELETE"} {
		require.Equal(t, http.StatusBadRequest, serve(m, `{"reason":"lost"}`, false), m)
		require.Equal(t, http.StatusBadRequest, serve(m, `x`, true), m+" chunked")
	}
	require.Zero(t, reached)
	require.Equal(t, http.StatusOK, serve("DELETE", "", false))
	require.Equal(t, http.StatusOK, serve("GET", "", true))
	require.Equal(t, http.StatusOK, serve("POST", `{"reason":"kept"}`, false))
	require.Equal(t, 3, reached)
}
