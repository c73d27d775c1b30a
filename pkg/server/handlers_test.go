package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// TestGatewayHandlersRunBehindTheEdge: a plain handler of a gateway is served on its exact
// path with the raw body, behind the edge (request id, body limit, recovery); other paths
// still reach the bridge.
func TestGatewayHandlersRunBehindTheEdge(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			WriteError(w, r, apierr.New(apierr.MethodNotAllowed, "POST only"))
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			WriteError(w, r, apierr.New(apierr.PayloadTooLarge, "too large"))
			return
		}
		if string(body) == "panic" {
			panic("boom")
		}
		_, _ = io.WriteString(w, requestid.From(r.Context())+" "+string(body))
	})
	h, err := NewHTTPHandler(context.Background(), HTTPConfig{
		MaxBodyBytes: 16,
		Gateways:     []Gateway{{Register: noRoutes, Handlers: map[string]http.Handler{"/v1/raw": echo}}},
	})
	require.NoError(t, err)
	serve := func(method, path, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set(requestid.Header, "req-raw-1")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}

	rec := serve("POST", "/v1/raw", `{"a": 1}`)
	require.Equal(t, 200, rec.Code)
	require.Equal(t, `req-raw-1 {"a": 1}`, rec.Body.String(), "the raw body, as sent")
	require.Equal(t, "req-raw-1", rec.Header().Get(requestid.Header))

	rec = serve("GET", "/v1/raw", "")
	require.Equal(t, 405, rec.Code)
	require.Equal(t, "method_not_allowed", envelope(t, rec)["error"])

	rec = serve("POST", "/v1/raw", strings.Repeat("x", 17))
	require.Equal(t, 413, rec.Code)
	require.Equal(t, "payload_too_large", envelope(t, rec)["error"])

	rec = serve("POST", "/v1/raw", "panic")
	require.Equal(t, 500, rec.Code)
	require.Equal(t, "internal", envelope(t, rec)["error"])

	for _, path := range []string{"/v1/raw/", "/v1/raw/x", "/v1/ra"} {
		rec = serve("POST", path, "")
		require.Equal(t, 404, rec.Code, path)
		require.Equal(t, "not_found", envelope(t, rec)["error"])
	}

	for _, bad := range []map[string]http.Handler{{"v1/raw": echo}, {"/v1/raw/": echo}, {"POST /v1/raw": echo}, {"/openapi.json": echo}} {
		_, err := NewHTTPHandler(context.Background(), HTTPConfig{Gateways: []Gateway{{Register: noRoutes, Handlers: bad}}})
		require.Error(t, err, "%v", bad)
	}
	_, err = NewHTTPHandler(context.Background(), HTTPConfig{Gateways: []Gateway{
		{Register: noRoutes, Handlers: map[string]http.Handler{"/v1/raw": echo}},
		{Register: noRoutes, Handlers: map[string]http.Handler{"/v1/raw": echo}},
	}})
	require.ErrorContains(t, err, "two handlers")
}

func noRoutes(context.Context, *runtime.ServeMux, *grpc.ClientConn) error { return nil }
