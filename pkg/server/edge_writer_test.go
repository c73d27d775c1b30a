package server

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// TestEdgeWriteError: with EdgeConfig.WriteError set, the edge's own refusals (header
// limit, a bad path, a panic) are written by it, after the request id is set; without it
// they are the envelope.
func TestEdgeWriteError(t *testing.T) {
	var codes []apierr.Code
	cfg := EdgeConfig{WriteError: func(w http.ResponseWriter, _ *http.Request, e *apierr.Error) {
		codes = append(codes, e.Code)
		w.WriteHeader(apierr.HTTPStatus(e.Code))
		_, _ = w.Write([]byte("own:" + string(e.Code)))
	}}
	url := serveEdge(t, cfg, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))

	resp, body := get(t, url+"/x", "X-Big", strings.Repeat("h", MaxHeaderBytes))
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	require.Equal(t, "own:request_header_too_large", body)
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	resp, body = get(t, url+"/a%00b")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, "own:invalid_argument", body)
	resp, body = get(t, url+"/panics")
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Equal(t, "own:internal", body)
	require.Equal(t, []apierr.Code{apierr.RequestHeaderTooLarge, apierr.InvalidArgument, apierr.Internal}, codes)

	plain := serveEdge(t, EdgeConfig{}, http.NotFoundHandler())
	resp, body = get(t, plain+"/a%00b")
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, `"error":"invalid_argument"`)
}
