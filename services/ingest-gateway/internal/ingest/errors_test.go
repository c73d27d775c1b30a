package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// deeptracerErrors is the deeptracer profile's gateway_errors, as the keys service hands
// them to gateways.
func deeptracerErrors(t testing.TB) keyformat.GatewayErrors {
	t.Helper()
	reg, err := keyformat.LoadProfile("deeptracer")
	require.NoError(t, err)
	g := reg.GatewayErrors()
	require.Equal(t, keyformat.ShapeError, g.Shape)
	return g
}

// requireBody checks an answer of the shape "error": the status, exactly body, JSON, and
// the request id header still set.
func requireBody(t testing.TB, r response, status int, body string) {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, body, string(r.body))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, strconv.Itoa(len(body)), r.header.Get("Content-Length"))
	require.NotEmpty(t, r.header.Get(requestid.Header))
}

// TestProfileErrorBodies: under deeptracer's gateway_errors every refusal of OTLP/HTTP and
// /ingest/logs is {"error": "<message>"} byte for byte: 401 "Missing or invalid API key"
// for a missing, empty or unknown key, 403 "Origin not allowed", and the gateway's own
// message for a code the profile does not word (429 with Retry-After, 503, 400, 404, 405,
// and the edge's 413). Headers stay (X-Request-Id, WWW-Authenticate, Retry-After); good
// requests are answered as ever.
func TestProfileErrorBodies(t *testing.T) {
	e := newEnv(t, "", withErrors(deeptracerErrors(t)), withMaxBody(64<<10))
	const (
		missing = `{"error": "Missing or invalid API key"}`
		origin  = `{"error": "Origin not allowed"}`
	)
	for _, path := range []string{PathTraces, PathMetrics, PathLogs, PathJSONLogs} {
		body, ctype := encodeProto(t, sampleRequest(Traces)), contentTypeProto
		switch path {
		case PathMetrics:
			body = encodeProto(t, sampleRequest(Metrics))
		case PathLogs:
			body = encodeProto(t, sampleRequest(Logs))
		case PathJSONLogs:
			body, ctype = []byte(`{"service":"checkout","logs":[{"message":"hello"}]}`), "application/json"
		}
		send := func(headers map[string]string) response {
			headers["Content-Type"] = ctype
			return e.post(t, path, bytes.NewReader(body), headers)
		}
		for name, headers := range map[string]map[string]string{
			"garbage key":  {"Authorization": "Bearer dt_nothing"},
			"x-api-key":    {"X-Api-Key": "not-a-key"},
			"no key":       {},
			"empty bearer": {"Authorization": "Bearer "},
		} {
			r := send(headers)
			requireBody(t, r, http.StatusUnauthorized, missing)
			require.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"), "%s %s", path, name)
		}
		requireBody(t, send(map[string]string{"Authorization": "Bearer foreign", "Origin": "https://evil.example.com"}), http.StatusForbidden, origin)

		r := send(map[string]string{"Authorization": "Bearer slow"})
		requireBody(t, r, http.StatusTooManyRequests, `{"error": "slow down"}`)
		require.Equal(t, "2", r.header.Get("Retry-After"))
		r = send(map[string]string{"Authorization": "Bearer broken"})
		requireBody(t, r, http.StatusServiceUnavailable, `{"error": "key verification is unavailable; retry later"}`)
		require.Equal(t, "1", r.header.Get("Retry-After"))

		ok := send(map[string]string{"Authorization": "Bearer good", requestid.Header: "profile-ok-" + strings.TrimPrefix(path, "/")})
		require.Equal(t, http.StatusOK, ok.status, "%s", ok.body)
	}
	// Bad input is worded by the gateway, in the profile's shape: 400, 404, 405 and the
	// edge's own 413.
	for _, c := range []struct {
		name   string
		r      response
		status int
	}{
		{"bad content type", e.post(t, PathTraces, strings.NewReader("x"), map[string]string{"Authorization": "Bearer good", "Content-Type": "text/plain"}), http.StatusBadRequest},
		{"undecodable body", e.post(t, PathTraces, strings.NewReader("\xff\xff"), map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto}), http.StatusBadRequest},
		{"unknown route", e.post(t, "/v1/spans", strings.NewReader("x"), map[string]string{"Authorization": "Bearer good"}), http.StatusNotFound},
		{"method", e.do(t, http.MethodGet, PathTraces, nil, nil), http.StatusMethodNotAllowed},
		{"edge: body too large", e.post(t, PathTraces, bytes.NewReader(make([]byte, 65<<10)), map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto}), http.StatusRequestEntityTooLarge},
		{"edge: NUL in the path", e.do(t, http.MethodPost, "/v1/tr%00aces", nil, nil), http.StatusBadRequest},
	} {
		require.Equal(t, c.status, c.r.status, "%s: %s", c.name, c.r.body)
		var got map[string]any
		require.NoError(t, json.Unmarshal(c.r.body, &got), "%s: %s", c.name, c.r.body)
		require.Len(t, got, 1, "%s: only an error field: %s", c.name, c.r.body)
		require.NotEmpty(t, got["error"], c.name)
		require.True(t, bytes.HasPrefix(c.r.body, []byte(`{"error": "`)), "%s: %s", c.name, c.r.body)
		require.Equal(t, "application/json", c.r.header.Get("Content-Type"), c.name)
		require.NotEmpty(t, c.r.header.Get(requestid.Header), c.name)
	}
	require.Len(t, e.messages(t, natsx.IngestStream(e.ns)), 4, "only the good requests were stored")
}

// TestProfileMessagesInTheEnvelope: a profile that words some codes but keeps the envelope
// gets the envelope with its message; codes it does not word keep the gateway's.
func TestProfileMessagesInTheEnvelope(t *testing.T) {
	e := newEnv(t, "", withErrors(keyformat.GatewayErrors{Messages: map[string]string{"unauthenticated": "Who are you?"}}))
	body := encodeProto(t, sampleRequest(Traces))
	r := e.post(t, PathTraces, bytes.NewReader(body), map[string]string{"Authorization": "Bearer nope", "Content-Type": contentTypeProto})
	require.Equal(t, "Who are you?", requireError(t, r, http.StatusUnauthorized, apierr.Unauthenticated).Message)
	r = e.post(t, PathTraces, bytes.NewReader(body), map[string]string{"Authorization": "Bearer foreign", "Content-Type": contentTypeProto})
	require.Equal(t, "this origin may not use the key", requireError(t, r, http.StatusForbidden, apierr.OriginNotAllowed).Message)
}

// TestProfileErrorsOverGRPC: OTLP/gRPC keeps its status codes and ErrorInfo and carries the
// profile's message.
func TestProfileErrorsOverGRPC(t *testing.T) {
	e := newEnv(t, "", withErrors(deeptracerErrors(t)))
	client := ptraceotlp.NewGRPCClient(e.grpcConn(t))
	req := ptraceotlp.NewExportRequestFromTraces(sampleTraces(1))
	for _, c := range []struct {
		md      []string
		code    codes.Code
		reason  apierr.Code
		message string
	}{
		{[]string{"authorization", "Bearer nope"}, codes.Unauthenticated, apierr.Unauthenticated, "Missing or invalid API key"},
		{nil, codes.Unauthenticated, apierr.Unauthenticated, "Missing or invalid API key"},
		{[]string{"authorization", "Bearer foreign", "origin", "https://evil.example.com"}, codes.PermissionDenied, apierr.OriginNotAllowed, "Origin not allowed"},
		{[]string{"authorization", "Bearer slow"}, codes.ResourceExhausted, apierr.RateLimited, "slow down"},
	} {
		_, err := client.Export(grpcCtx(t, c.md...), req)
		requireStatus(t, err, c.code, c.reason)
		require.Equal(t, c.message, status.Convert(err).Message())
	}
	_, err := client.Export(grpcCtx(t, "authorization", "Bearer good"), req)
	require.NoError(t, err)
}

// TestErrorBody: the shape "error" is {"error": <the message as a JSON string>}, with no
// HTML escaping and nothing after the brace.
func TestErrorBody(t *testing.T) {
	for msg, want := range map[string]string{
		"Missing or invalid API key": `{"error": "Missing or invalid API key"}`,
		`say "hi" <now> & then`:      `{"error": "say \"hi\" <now> & then"}`,
		"line\nbreak":                `{"error": "line\nbreak"}`,
		"":                           `{"error": ""}`,
	} {
		require.Equal(t, want, string(errorBody(msg)))
	}
}
