package ingest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/nats-io/nats.go/jetstream"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestOTLPHTTPEachSignalAndEncoding(t *testing.T) {
	e := newEnv(t, "")
	for _, sig := range []Signal{Traces, Metrics, Logs} {
		want := encodeProto(t, sampleRequest(sig))
		variants := []struct {
			name, contentType, encoding string
			body                        []byte
		}{
			{"proto", contentTypeProto, "", want},
			{"json", contentTypeJSON + "; charset=utf-8", "", encodeJSON(t, sampleRequest(sig))},
			{"proto-gzip", contentTypeProto, "gzip", gzipBytes(t, want)},
			{"json-gzip", contentTypeJSON, "gzip", gzipBytes(t, encodeJSON(t, sampleRequest(sig)))},
		}
		for _, v := range variants {
			t.Run(string(sig)+"/"+v.name, func(t *testing.T) {
				id := "req-" + string(sig) + "-" + v.name
				okBefore := promtest.ToFloat64(requestsTotal.WithLabelValues(transportOTLPHTTP, string(sig), "ok"))
				r := e.post(t, pathOf(sig), bytes.NewReader(v.body), map[string]string{
					"Authorization": "Bearer good", "Content-Type": v.contentType, "Content-Encoding": v.encoding, requestid.Header: id,
				})
				require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
				require.Equal(t, id, r.header.Get(requestid.Header))
				require.Equal(t, 1.0, promtest.ToFloat64(requestsTotal.WithLabelValues(transportOTLPHTTP, string(sig), "ok"))-okBefore)

				// The response is an empty Export*ServiceResponse in the request's encoding.
				if strings.HasPrefix(v.contentType, contentTypeJSON) {
					require.Equal(t, contentTypeJSON, r.header.Get("Content-Type"))
					require.JSONEq(t, `{}`, string(r.body))
				} else {
					require.Equal(t, contentTypeProto, r.header.Get("Content-Type"))
					require.Empty(t, r.body)
				}
				requireResponseDecodes(t, sig, strings.HasPrefix(v.contentType, contentTypeJSON), r.body)

				msgs := e.byRequestID(t, natsx.IngestStream(e.ns), id)
				require.Len(t, msgs, 1)
				m := msgs[0]
				require.Equal(t, e.ns+".ingest.acc_1.prj_1.prd."+string(sig), m.Subject)
				require.Equal(t, "key_good", m.Header.Get(HeaderKeyID))
				require.Equal(t, []string{id}, m.Header.Values(HeaderRequestID))
				require.Equal(t, []string{strconv.Itoa(len(want))}, m.Header.Values(HeaderRequestSize))
				require.Equal(t, MsgID("key_good", sig, id, m.Data), m.Header.Get(jetstream.MsgIDHeader))
				// Whatever came in, the stream holds the same protobuf.
				require.Equal(t, want, m.Data)
			})
		}
	}
}

func requireResponseDecodes(t *testing.T, sig Signal, isJSON bool, body []byte) {
	t.Helper()
	var r interface {
		UnmarshalProto([]byte) error
		UnmarshalJSON([]byte) error
	}
	switch sig {
	case Traces:
		r = ptraceotlp.NewExportResponse()
	case Metrics:
		r = pmetricotlp.NewExportResponse()
	default:
		r = plogotlp.NewExportResponse()
	}
	if isJSON {
		require.NoError(t, r.UnmarshalJSON(body))
	} else {
		require.NoError(t, r.UnmarshalProto(body))
	}
}

// OTLP JSON spells trace and span ids in hex; they must arrive intact in the protobuf.
func TestOTLPHTTPJSONTraceIDSurvives(t *testing.T) {
	e := newEnv(t, "")
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"` + testTraceIDHex + `","spanId":"a1b2c3d4e5f60718","name":"checkout","kind":2,` +
		`"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000100000000"}]}]}]}`
	r := e.post(t, PathTraces, strings.NewReader(body), map[string]string{
		"x-api-key": "good", "Content-Type": contentTypeJSON, requestid.Header: "hex-trip",
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "hex-trip")
	require.Len(t, msgs, 1)
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(msgs[0].Data))
	span := req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	require.Equal(t, testTraceIDHex, span.TraceID().String())
	require.Equal(t, "a1b2c3d4e5f60718", span.SpanID().String())
	require.Equal(t, "checkout", span.Name())
	svc, ok := req.Traces().ResourceSpans().At(0).Resource().Attributes().Get("service.name")
	require.True(t, ok)
	require.Equal(t, "web", svc.Str())
}

func TestOTLPHTTPAnonymousGoesToAnonStream(t *testing.T) {
	e := newEnv(t, "")
	r := e.post(t, PathLogs, bytes.NewReader(encodeProto(t, sampleRequest(Logs))), map[string]string{
		"Authorization": "Bearer anon", "Content-Type": contentTypeProto, requestid.Header: "anon-1",
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	msgs := e.byRequestID(t, natsx.AnonIngestStream(e.ns), "anon-1")
	require.Len(t, msgs, 1)
	require.Equal(t, e.ns+".anon.key_anon.logs", msgs[0].Subject)
	require.Equal(t, "key_anon", msgs[0].Header.Get(HeaderKeyID))
	require.Empty(t, e.byRequestID(t, natsx.IngestStream(e.ns), "anon-1"))
}

// A client's retry (same key, same X-Request-Id, same payload) is stored once; another key
// or another payload under the same id is not mistaken for it.
func TestOTLPHTTPDeduplicatesPerKey(t *testing.T) {
	e := newEnv(t, "")
	body := encodeProto(t, sampleRequest(Traces))
	send := func(key string) {
		r := e.post(t, PathTraces, bytes.NewReader(body), map[string]string{
			"Authorization": "Bearer " + key, "Content-Type": contentTypeProto, requestid.Header: "same-id",
		})
		require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	}
	send("good")
	send("good")
	send("good2")
	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "same-id")
	require.Len(t, msgs, 2)
	require.Equal(t, MsgID("key_good", Traces, "same-id", msgs[0].Data), msgs[0].Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, MsgID("key_good2", Traces, "same-id", msgs[1].Data), msgs[1].Header.Get(jetstream.MsgIDHeader))

	// Another payload under a reused request id (a proxy setting a constant one) is data,
	// not a retry: it is stored too.
	other := ptraceotlp.NewExportRequestFromTraces(sampleTraces(2))
	r := e.post(t, PathTraces, bytes.NewReader(encodeProto(t, other)), map[string]string{
		"Authorization": "Bearer good", "Content-Type": contentTypeProto, requestid.Header: "same-id",
	})
	require.Equal(t, http.StatusOK, r.status)
	require.Len(t, e.byRequestID(t, natsx.IngestStream(e.ns), "same-id"), 3)
}

// An export with nothing in it is answered 200 and stores nothing.
func TestOTLPHTTPEmptyExportPublishesNothing(t *testing.T) {
	e := newEnv(t, "")
	r := e.post(t, PathTraces, strings.NewReader(`{"resourceSpans":[]}`), map[string]string{
		"Authorization": "Bearer good", "Content-Type": contentTypeJSON, requestid.Header: "empty-1",
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
}

func TestRequestIDIsSanitized(t *testing.T) {
	e := newEnv(t, "")
	r := e.post(t, PathTraces, strings.NewReader("x"), map[string]string{requestid.Header: "bad id\twith<script>"})
	env := requireError(t, r, http.StatusUnauthorized, apierr.Unauthenticated)
	require.True(t, strings.HasPrefix(env.RequestID, "req_"), env.RequestID)
	require.Equal(t, "Bearer", r.header.Get("WWW-Authenticate"))
}

func TestRoutesAndMethods(t *testing.T) {
	e := newEnv(t, "")
	r := e.do(t, http.MethodGet, PathTraces, nil, nil)
	requireError(t, r, http.StatusMethodNotAllowed, apierr.MethodNotAllowed)
	require.Equal(t, http.MethodPost, r.header.Get("Allow"))
	requireError(t, e.do(t, http.MethodPut, PathJSONLogs, strings.NewReader("{}"), nil), http.StatusMethodNotAllowed, apierr.MethodNotAllowed)
	requireError(t, e.post(t, "/v1/spans", strings.NewReader("x"), map[string]string{"Authorization": "Bearer good"}), http.StatusNotFound, apierr.NotFound)
	requireError(t, e.do(t, http.MethodGet, "/", nil, nil), http.StatusNotFound, apierr.NotFound)
	requireError(t, e.post(t, PathTraces+"/", strings.NewReader("x"), nil), http.StatusNotFound, apierr.NotFound)
}

func TestAuthorizerErrors(t *testing.T) {
	e := newEnv(t, "")
	body := encodeProto(t, sampleRequest(Traces))
	r := e.post(t, PathTraces, bytes.NewReader(body), map[string]string{"Authorization": "Bearer slow", "Content-Type": contentTypeProto})
	env := requireError(t, r, http.StatusTooManyRequests, apierr.RateLimited)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Equal(t, 2, env.RetryAfterSeconds)

	// An error that is not an *apierr.Error is our fault: retryable 503, not 500.
	r = e.post(t, PathTraces, bytes.NewReader(body), map[string]string{"Authorization": "Bearer broken", "Content-Type": contentTypeProto})
	requireError(t, r, http.StatusServiceUnavailable, apierr.Unavailable)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
}

// endless is a body that never ends, sent chunked (no Content-Length).
type endless struct{ sent int64 }

func (r *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0x0a
	}
	r.sent += int64(len(p))
	return len(p), nil
}

func TestBadHTTPInput(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, "", withMaxBody(limit))
	valid := encodeProto(t, sampleRequest(Traces))
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 32<<20)) // 32 MiB of zeros: about 32 KiB compressed
	_ = zw.Close()
	require.Less(t, bomb.Len(), limit, "the bomb itself must fit under the limit")

	proto := map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto}
	with := func(h map[string]string, k, v string) map[string]string {
		c := map[string]string{}
		for a, b := range h {
			c[a] = b
		}
		if v == "" {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}

	cases := []struct {
		name    string
		path    string
		body    func() io.Reader
		headers map[string]string
		status  int
		code    apierr.Code
		message string
	}{
		{"truncated protobuf", PathTraces, bytesOf(valid[:len(valid)-7]), proto, 400, apierr.InvalidArgument, "protobuf"},
		{"garbage protobuf", PathMetrics, bytesOf([]byte{0xff, 0xff, 0xff}), proto, 400, apierr.InvalidArgument, "OTLP metrics"},
		{"JSON sent as protobuf", PathLogs, bytesOf([]byte(`{"resourceLogs":[]}`)), proto, 400, apierr.InvalidArgument, "protobuf"},
		{"wrong content type", PathTraces, bytesOf(valid), with(proto, "Content-Type", "text/plain"), 400, apierr.InvalidArgument, "application/x-protobuf or application/json"},
		{"no content type", PathTraces, bytesOf(valid), with(proto, "Content-Type", ""), 400, apierr.InvalidArgument, "application/x-protobuf or application/json"},
		{"malformed content type", PathTraces, bytesOf(valid), with(proto, "Content-Type", "application/json;;;=="), 400, apierr.InvalidArgument, "Content-Type"},
		{"invalid JSON", PathTraces, bytesOf([]byte(`{"resourceSpans": [`)), with(proto, "Content-Type", contentTypeJSON), 400, apierr.InvalidArgument, "JSON"},
		{"JSON with trailing garbage", PathTraces, bytesOf([]byte(`{} {}`)), with(proto, "Content-Type", contentTypeJSON), 400, apierr.InvalidArgument, "JSON"},
		{"JSON of the wrong shape", PathTraces, bytesOf([]byte(`{"resourceSpans": 5}`)), with(proto, "Content-Type", contentTypeJSON), 400, apierr.InvalidArgument, "JSON"},
		{"JSON with a bad trace id", PathTraces, bytesOf([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}`)), with(proto, "Content-Type", contentTypeJSON), 400, apierr.InvalidArgument, "JSON"},
		{"over the limit by Content-Length", PathTraces, bytesOf(make([]byte, limit+1)), proto, 413, apierr.PayloadTooLarge, "over"},
		{"over the limit while streaming", PathTraces, func() io.Reader { return io.LimitReader(&endless{}, 10*limit) }, proto, 413, apierr.PayloadTooLarge, "over"},
		{"endless chunked stream", PathTraces, func() io.Reader { return &endless{} }, proto, 413, apierr.PayloadTooLarge, "over"},
		{"gzip bomb", PathTraces, bytesOf(bomb.Bytes()), with(proto, "Content-Encoding", "gzip"), 413, apierr.PayloadTooLarge, "decompressed"},
		{"not gzip", PathTraces, bytesOf(valid), with(proto, "Content-Encoding", "gzip"), 400, apierr.InvalidArgument, "gzip"},
		{"truncated gzip", PathTraces, bytesOf(gzipBytes(t, valid)[:20]), with(proto, "Content-Encoding", "gzip"), 400, apierr.InvalidArgument, "gzip"},
		{"unsupported encoding", PathTraces, bytesOf(valid), with(proto, "Content-Encoding", "br"), 400, apierr.InvalidArgument, "gzip or no encoding"},
		{"no key", PathTraces, bytesOf(valid), with(proto, "Authorization", ""), 401, apierr.Unauthenticated, "no API key"},
		{"empty Bearer", PathTraces, bytesOf(valid), with(proto, "Authorization", "Bearer  "), 401, apierr.Unauthenticated, "Bearer"},
		{"Bearer alone", PathTraces, bytesOf(valid), with(proto, "Authorization", "Bearer"), 401, apierr.Unauthenticated, "Bearer"},
		{"other scheme", PathTraces, bytesOf(valid), with(proto, "Authorization", "Basic Z29vZDo="), 401, apierr.Unauthenticated, "Bearer <key>"},
		{"bare key without scheme", PathTraces, bytesOf(valid), with(proto, "Authorization", "good"), 401, apierr.Unauthenticated, "Bearer <key>"},
		{"unknown key", PathTraces, bytesOf(valid), with(proto, "Authorization", "Bearer lk_ing_nope"), 401, apierr.Unauthenticated, "not valid"},
		{"10 KiB key", PathTraces, bytesOf(valid), with(proto, "Authorization", "Bearer "+strings.Repeat("k", 10<<10)), 401, apierr.Unauthenticated, "malformed"},
		{"10 KiB x-api-key", PathTraces, bytesOf(valid), with(with(proto, "Authorization", ""), "x-api-key", strings.Repeat("k", 10<<10)), 401, apierr.Unauthenticated, "malformed"},
		{"empty x-api-key", PathTraces, bytesOf(valid), with(with(proto, "Authorization", ""), "x-api-key", " "), 401, apierr.Unauthenticated, "no API key"},
		{"bad key wins over a bad body", PathTraces, bytesOf([]byte("garbage")), with(proto, "Authorization", "Bearer nope"), 401, apierr.Unauthenticated, "not valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, tc.path, tc.body(), tc.headers)
			env := requireError(t, r, tc.status, tc.code)
			require.Contains(t, env.Message, tc.message)
			require.NotContains(t, env.Message, "kkkkkkkk", "a key must never be echoed")
		})
	}
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))

	// Key shapes that are accepted.
	for name, h := range map[string]map[string]string{
		"lower-case bearer":          with(proto, "Authorization", "bearer good"),
		"upper-case BEARER":          with(proto, "Authorization", "BEARER good"),
		"x-api-key":                  with(with(proto, "Authorization", ""), "x-api-key", "good"),
		"x-api-key beside Basic":     with(with(proto, "Authorization", "Basic Zm9vOmJhcg=="), "x-api-key", "good"),
		"spaces around Bearer token": with(proto, "Authorization", "Bearer    good  "),
	} {
		t.Run("accepted/"+name, func(t *testing.T) {
			r := e.post(t, PathTraces, bytes.NewReader(valid), h)
			require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
		})
	}
}

func bytesOf(b []byte) func() io.Reader { return func() io.Reader { return bytes.NewReader(b) } }

// A body that breaks off mid-way (client gone, proxy cut) is a 400, not a 500.
func TestBodyReadErrorIs400(t *testing.T) {
	e := newEnv(t, "")
	req, err := http.NewRequest(http.MethodPost, PathTraces, iotest.ErrReader(io.ErrUnexpectedEOF))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("Content-Type", contentTypeProto)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	env := requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
	require.Contains(t, env.Message, "could not be read")
}

// A payload over the NATS server's max_payload is refused as too large (not retried
// forever as a 503).
func TestOverNATSMaxPayloadIs413(t *testing.T) {
	srv := testutil.StartNATS(t)
	e := newEnv(t, srv.URL)
	big := encodeProto(t, plogotlp.NewExportRequestFromLogs(sampleLogs(strings.Repeat("x", 1536<<10))))
	require.Greater(t, int64(len(big)), e.nc.MaxPayload())
	r := e.post(t, PathLogs, bytes.NewReader(big), map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto})
	env := requireError(t, r, http.StatusRequestEntityTooLarge, apierr.PayloadTooLarge)
	require.Contains(t, env.Message, fmt.Sprint(len(big)))
	// A normal request still goes through on the same connection.
	r = e.post(t, PathLogs, bytes.NewReader(encodeProto(t, sampleRequest(Logs))), map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
}

// TestNoticeOnEveryAnswer: a claimed anonymous key's notice comes back on every answer
// once its key is accepted, success or not, over OTLP/HTTP, JSON logs and OTLP/gRPC; its
// data goes to the account it was claimed into. A key with no notice gets no header.
func TestNoticeOnEveryAnswer(t *testing.T) {
	e := newEnv(t, "")
	const want = "claimed; grace_until=2026-12-30T12:00:00Z"
	proto := map[string]string{"Authorization": "Bearer claimed", "Content-Type": contentTypeProto, requestid.Header: "claimed-1"}

	r := e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), proto)
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, want, r.header.Get(grant.NoticeHeader))
	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "claimed-1")
	require.Len(t, msgs, 1)
	require.Equal(t, e.ns+".ingest.acc_1.prj_1.prd.traces", msgs[0].Subject)

	r = e.post(t, PathTraces, strings.NewReader("not protobuf"), proto)
	requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
	require.Equal(t, want, r.header.Get(grant.NoticeHeader))

	r = e.post(t, PathJSONLogs, strings.NewReader(`{"service":"s","logs":[{"message":"m"}]}`), map[string]string{"Authorization": "Bearer claimed", "Content-Type": "application/json"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Equal(t, want, r.header.Get(grant.NoticeHeader))

	r = e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), map[string]string{"Authorization": "Bearer good", "Content-Type": contentTypeProto})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	require.Empty(t, r.header.Values(grant.NoticeHeader))

	// Refused for this one request (its origin, a rate limit), the key still says it was claimed.
	r = e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), map[string]string{"Authorization": "Bearer claimed-elsewhere", "Content-Type": contentTypeProto})
	requireError(t, r, http.StatusForbidden, apierr.OriginNotAllowed)
	require.Equal(t, want, r.header.Get(grant.NoticeHeader))

	conn := e.grpcConn(t)
	var header metadata.MD
	_, err := ptraceotlp.NewGRPCClient(conn).Export(grpcCtx(t, "authorization", "Bearer claimed"),
		ptraceotlp.NewExportRequestFromTraces(sampleTraces(1)), grpc.Header(&header))
	require.NoError(t, err)
	require.Equal(t, []string{want}, header.Get(grant.NoticeHeader))
	header = nil
	_, err = ptraceotlp.NewGRPCClient(conn).Export(grpcCtx(t, "authorization", "Bearer good"),
		ptraceotlp.NewExportRequestFromTraces(sampleTraces(1)), grpc.Header(&header))
	require.NoError(t, err)
	require.Empty(t, header.Get(grant.NoticeHeader))
	header = nil
	var trailer metadata.MD
	_, err = ptraceotlp.NewGRPCClient(conn).Export(grpcCtx(t, "authorization", "Bearer claimed-elsewhere"),
		ptraceotlp.NewExportRequestFromTraces(sampleTraces(1)), grpc.Header(&header), grpc.Trailer(&trailer))
	require.Equal(t, codes.PermissionDenied, status.Code(err))
	require.Equal(t, []string{want}, append(header.Get(grant.NoticeHeader), trailer.Get(grant.NoticeHeader)...),
		"a refusal carries the notice (a trailers-only answer carries it in the trailer)")
}
