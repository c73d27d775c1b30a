package ingest

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// emptyExports are export requests of sig that hold no items, as protobuf and as JSON:
// nothing at all, and resources with no items in them.
func emptyExports(t *testing.T, sig Signal) (protos, jsons map[string][]byte) {
	t.Helper()
	var hollow testRequest
	field := map[Signal]string{Traces: "resourceSpans", Metrics: "resourceMetrics", Logs: "resourceLogs"}[sig]
	switch sig {
	case Traces:
		r := ptraceotlp.NewExportRequest()
		r.Traces().ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Scope().SetName("s")
		hollow = r
	case Metrics:
		r := pmetricotlp.NewExportRequest()
		r.Metrics().ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetName("no data points")
		hollow = r
	default:
		r := plogotlp.NewExportRequest()
		r.Logs().ResourceLogs().AppendEmpty().Resource().Attributes().PutStr("service.name", "s")
		hollow = r
	}
	protos = map[string][]byte{"no bytes": {}, "resources without items": encodeProto(t, hollow)}
	jsons = map[string][]byte{
		"{}":                      []byte(`{}`),
		"an empty list":           []byte(`{"` + field + `":[]}`),
		"resources without items": encodeJSON(t, hollow),
	}
	return protos, jsons
}

// Fault 5 of issue 8: "If the server receives an empty request (a request that does not
// carry any telemetry data) the server SHOULD respond with success" (OTLP specification,
// Full Success): 200 with an empty Export*ServiceResponse, on every transport and
// encoding, and nothing stored. POST /ingest/logs follows: an empty (or absent) logs list
// is {"accepted":0}.
func TestEmptyExportsSucceedAndStoreNothing(t *testing.T) {
	e := newEnv(t, "")
	conn := e.grpcConn(t)
	for _, key := range []string{"good", "anon"} {
		for _, sig := range []Signal{Traces, Metrics, Logs} {
			protos, jsons := emptyExports(t, sig)
			for name, body := range protos {
				for enc, b := range map[string][]byte{"": body, "gzip": gzipBytes(t, body)} {
					t.Run(key+"/"+string(sig)+"/protobuf "+enc+"/"+name, func(t *testing.T) {
						r := e.post(t, pathOf(sig), bytes.NewReader(b), map[string]string{
							"Authorization": "Bearer " + key, "Content-Type": contentTypeProto, "Content-Encoding": enc,
						})
						require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
						require.Equal(t, contentTypeProto, r.header.Get("Content-Type"))
						require.Empty(t, r.body)
						requireResponseDecodes(t, sig, false, r.body)
					})
				}
				t.Run(key+"/"+string(sig)+"/grpc/"+name, func(t *testing.T) {
					for _, opts := range [][]grpc.CallOption{nil, {grpc.UseCompressor(gzip.Name)}} {
						var out []byte
						ctx := grpcCtx(t, "authorization", "Bearer "+key)
						opts = append(opts, grpc.ForceCodecV2(rawCodec{}))
						require.NoError(t, conn.Invoke(ctx, grpcMethod(sig), &body, &out, opts...))
						require.Empty(t, out, "an empty Export*ServiceResponse")
					}
				})
			}
			for name, body := range jsons {
				for enc, b := range map[string][]byte{"": body, "gzip": gzipBytes(t, body)} {
					t.Run(key+"/"+string(sig)+"/JSON "+enc+"/"+name, func(t *testing.T) {
						r := e.post(t, pathOf(sig), bytes.NewReader(b), map[string]string{
							"Authorization": "Bearer " + key, "Content-Type": contentTypeJSON, "Content-Encoding": enc,
						})
						require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
						require.Equal(t, contentTypeJSON, r.header.Get("Content-Type"))
						require.JSONEq(t, `{}`, string(r.body))
						requireResponseDecodes(t, sig, true, r.body)
					})
				}
			}
		}
		for name, body := range map[string]string{
			"an empty list": `{"service":"s","logs":[]}`,
			"no list":       `{"service":"s"}`,
			"null":          `{"service":"s","logs":null}`,
		} {
			for enc, b := range map[string][]byte{"": []byte(body), "gzip": gzipBytes(t, []byte(body))} {
				t.Run(key+"/ingest-logs "+enc+"/"+name, func(t *testing.T) {
					r := e.post(t, PathJSONLogs, bytes.NewReader(b), map[string]string{
						"Authorization": "Bearer " + key, "Content-Type": contentTypeJSON, "Content-Encoding": enc,
					})
					require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
					require.JSONEq(t, `{"accepted":0}`, string(r.body))
				})
			}
		}
	}
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
	require.Empty(t, e.messages(t, natsx.AnonIngestStream(e.ns)))
}

// No bytes are an empty export in protobuf but not a JSON text: JSON bodies must hold one.
func TestEmptyJSONBodyIs400(t *testing.T) {
	e := newEnv(t, "")
	for _, path := range []string{PathTraces, PathMetrics, PathLogs, PathJSONLogs} {
		for enc, b := range map[string][]byte{"": nil, "gzip": gzipBytes(t, nil)} {
			r := e.post(t, path, bytes.NewReader(b), map[string]string{
				"Authorization": "Bearer good", "Content-Type": contentTypeJSON, "Content-Encoding": enc, requestid.Header: "empty",
			})
			env := requireError(t, r, http.StatusBadRequest, apierr.InvalidArgument)
			require.Contains(t, env.Message, "empty")
		}
	}
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
}
