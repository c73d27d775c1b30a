package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// serveEdge serves Edge(cfg, app) through ServeHTTP on a real listener, as Run does.
func serveEdge(t *testing.T, cfg EdgeConfig, app http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeHTTP(ctx, lis, Edge(cfg, app), time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return "http://" + lis.Addr().String()
}

func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestEdgeHeaderLimit(t *testing.T) {
	var seen string
	url := serveEdge(t, EdgeConfig{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = requestid.From(r.Context())
		_, _ = io.WriteString(w, "app")
	}))
	pad := func(n int) string { return strings.Repeat("p", n) }

	// Up to the limit, counted as sent, the app serves.
	resp, body := get(t, url+"/x", "X-Pad", pad(MaxHeaderBytes-1024))
	require.Equal(t, 200, resp.StatusCode, body)
	require.Equal(t, resp.Header.Get(requestid.Header), seen)

	// Over it, by one field or by many, the envelope.
	resp, body = get(t, url+"/x", "X-Pad", pad(MaxHeaderBytes), requestid.Header, "mine-7")
	require.Equal(t, 431, resp.StatusCode, body)
	require.Contains(t, body, `"error":"request_header_too_large"`)
	require.Contains(t, body, `"request_id":"mine-7"`)
	require.Contains(t, body, `"documentation_url":"https://docs.latchkey.dev/errors/request_header_too_large"`)
	require.Equal(t, "mine-7", resp.Header.Get(requestid.Header))
	many := []string{}
	for i := range MaxHeaderBytes / 16 {
		many = append(many, fmt.Sprintf("X-P-%d", i), "0123456789")
	}
	resp, body = get(t, url+"/x", many...)
	require.Equal(t, 431, resp.StatusCode, body)
	require.Contains(t, body, `"error":"request_header_too_large"`)

	// Up to twice the limit still reaches the edge; beyond, net/http answers on its own.
	resp, body = get(t, url+"/x", "X-Pad", pad(headerReadLimit-1024))
	require.Equal(t, 431, resp.StatusCode)
	require.Contains(t, body, "request_header_too_large")
	resp, _ = get(t, url+"/x", "X-Pad", pad(headerReadLimit+8<<10))
	require.Equal(t, 431, resp.StatusCode)
}

func TestEdgeRecoversHealthAndMetrics(t *testing.T) {
	ready := false
	h := Edge(EdgeConfig{Ready: func() bool { return ready }, MaxBodyBytes: 8}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/read":
			_, err := io.ReadAll(r.Body)
			require.Error(t, err)
			require.True(t, BodyTooLarge(r.Context()))
			w.WriteHeader(http.StatusTeapot)
		default:
			require.NotNil(t, logging.From(r.Context()))
			require.False(t, BodyTooLarge(r.Context()))
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	require.Equal(t, 503, serve(httptest.NewRequest("GET", "/healthz", nil)).Code)
	ready = true
	require.Equal(t, 200, serve(httptest.NewRequest("GET", "/healthz", nil)).Code)
	rec := serve(httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	require.Contains(t, rec.Body.String(), "go_goroutines")

	rec = serve(httptest.NewRequest("GET", "/panic", nil))
	require.Equal(t, 500, rec.Code)
	require.Equal(t, "internal", envelope(t, rec)["error"])

	require.Equal(t, 204, serve(httptest.NewRequest("POST", "/ok", strings.NewReader("12345678"))).Code)
	rec = serve(httptest.NewRequest("POST", "/ok", strings.NewReader("123456789")))
	require.Equal(t, 413, rec.Code, "a declared length over the limit")
	require.Equal(t, "payload_too_large", envelope(t, rec)["error"])
	req := httptest.NewRequest("POST", "/read", io.LimitReader(strings.NewReader(strings.Repeat("x", 100)), 100))
	req.ContentLength = -1 // streamed: only reading finds out
	require.Equal(t, http.StatusTeapot, serve(req).Code)

	// What the edge answered itself is counted, as the handler's own metrics cannot.
	metrics := serve(httptest.NewRequest("GET", "/metrics", nil)).Body.String()
	require.Contains(t, metrics, `latchkey_http_edge_refused_total{code="payload_too_large",listener="http"}`)
	require.Contains(t, metrics, `latchkey_http_edge_refused_total{code="internal",listener="http"}`)
}
