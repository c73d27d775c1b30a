package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

func grpcCtx(t testing.TB, kv ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

func TestOTLPGRPCExport(t *testing.T) {
	e := newEnv(t, "")
	conn := e.grpcConn(t)

	var header metadata.MD
	_, err := ptraceotlp.NewGRPCClient(conn).Export(
		grpcCtx(t, "authorization", "Bearer good", requestid.MetadataKey, "grpc-traces"),
		ptraceotlp.NewExportRequestFromTraces(sampleTraces(3)), grpc.Header(&header))
	require.NoError(t, err)
	require.Equal(t, []string{"grpc-traces"}, header.Get(requestid.MetadataKey))

	_, err = pmetricotlp.NewGRPCClient(conn).Export(
		grpcCtx(t, "x-api-key", "good", requestid.MetadataKey, "grpc-metrics"),
		pmetricotlp.NewExportRequestFromMetrics(sampleMetrics()))
	require.NoError(t, err)

	_, err = plogotlp.NewGRPCClient(conn).Export(
		grpcCtx(t, "authorization", "bearer anon", requestid.MetadataKey, "grpc-logs"),
		plogotlp.NewExportRequestFromLogs(sampleLogs("from grpc")))
	require.NoError(t, err)

	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), "grpc-traces")
	require.Len(t, msgs, 1)
	require.Equal(t, e.ns+".ingest.acc_1.prj_1.prd.traces", msgs[0].Subject)
	require.Equal(t, MsgID("key_good", Traces, "grpc-traces", msgs[0].Data), msgs[0].Header.Get(jetstream.MsgIDHeader))
	got := ptraceotlp.NewExportRequest()
	require.NoError(t, got.UnmarshalProto(msgs[0].Data))
	require.Equal(t, 3, got.Traces().SpanCount())
	require.Equal(t, testTraceIDHex, got.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID().String())

	msgs = e.byRequestID(t, natsx.IngestStream(e.ns), "grpc-metrics")
	require.Len(t, msgs, 1)
	require.Equal(t, e.ns+".ingest.acc_1.prj_1.prd.metrics", msgs[0].Subject)

	msgs = e.byRequestID(t, natsx.AnonIngestStream(e.ns), "grpc-logs")
	require.Len(t, msgs, 1)
	require.Equal(t, e.ns+".anon.key_anon.logs", msgs[0].Subject)

	// Without a request id the call still gets one, echoed in the response header.
	header = nil
	_, err = ptraceotlp.NewGRPCClient(conn).Export(grpcCtx(t, "authorization", "Bearer good"),
		ptraceotlp.NewExportRequestFromTraces(sampleTraces(1)), grpc.Header(&header))
	require.NoError(t, err)
	require.Len(t, header.Get(requestid.MetadataKey), 1)
	require.Len(t, e.byRequestID(t, natsx.IngestStream(e.ns), header.Get(requestid.MetadataKey)[0]), 1)

	// OTLP exporters often compress.
	_, err = plogotlp.NewGRPCClient(conn).Export(
		grpcCtx(t, "authorization", "Bearer good", requestid.MetadataKey, "grpc-gzip"),
		plogotlp.NewExportRequestFromLogs(sampleLogs("compressed")), grpc.UseCompressor(gzip.Name))
	require.NoError(t, err)
	require.Len(t, e.byRequestID(t, natsx.IngestStream(e.ns), "grpc-gzip"), 1)

	// An empty export is fine and stores nothing.
	n := len(e.messages(t, natsx.IngestStream(e.ns)))
	_, err = ptraceotlp.NewGRPCClient(conn).Export(grpcCtx(t, "authorization", "Bearer good"), ptraceotlp.NewExportRequest())
	require.NoError(t, err)
	require.Len(t, e.messages(t, natsx.IngestStream(e.ns)), n)
}

// requireStatus checks a gRPC error's code and ErrorInfo reason, and returns its RetryInfo.
func requireStatus(t testing.TB, err error, code codes.Code, reason apierr.Code) *errdetails.RetryInfo {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	var info *errdetails.ErrorInfo
	var retry *errdetails.RetryInfo
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.RetryInfo:
			retry = d
		}
	}
	require.NotNil(t, info, "no ErrorInfo")
	require.Equal(t, string(reason), info.GetReason())
	require.Equal(t, apierr.Domain, info.GetDomain())
	return retry
}

func TestOTLPGRPCRefusals(t *testing.T) {
	e := newEnv(t, "")
	client := ptraceotlp.NewGRPCClient(e.grpcConn(t))
	req := ptraceotlp.NewExportRequestFromTraces(sampleTraces(1))

	_, err := client.Export(grpcCtx(t), req)
	requireStatus(t, err, codes.Unauthenticated, apierr.Unauthenticated)
	_, err = client.Export(grpcCtx(t, "authorization", "Bearer nope"), req)
	requireStatus(t, err, codes.Unauthenticated, apierr.Unauthenticated)
	_, err = client.Export(grpcCtx(t, "authorization", "Bearer "), req)
	requireStatus(t, err, codes.Unauthenticated, apierr.Unauthenticated)
	_, err = client.Export(grpcCtx(t, "authorization", "Basic Z29vZA=="), req)
	requireStatus(t, err, codes.Unauthenticated, apierr.Unauthenticated)

	_, err = client.Export(grpcCtx(t, "authorization", "Bearer slow"), req)
	retry := requireStatus(t, err, codes.ResourceExhausted, apierr.RateLimited)
	require.NotNil(t, retry, "rate limiting must carry RetryInfo so OTLP clients retry")
	require.Equal(t, 2*time.Second, retry.GetRetryDelay().AsDuration())

	_, err = client.Export(grpcCtx(t, "authorization", "Bearer broken"), req)
	retry = requireStatus(t, err, codes.Unavailable, apierr.Unavailable)
	require.NotNil(t, retry)

	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
}

// garbageCodec frames bytes that are no OTLP message as a gRPC request.
type garbageCodec struct{}

func (garbageCodec) Marshal(any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}}, nil
}
func (garbageCodec) Unmarshal(mem.BufferSlice, any) error { return nil }
func (garbageCodec) Name() string                         { return "proto" }

func TestOTLPGRPCMalformedExportIsInvalidArgument(t *testing.T) {
	e := newEnv(t, "")
	conn := e.grpcConn(t)
	for _, method := range []string{
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export",
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
		"/opentelemetry.proto.collector.logs.v1.LogsService/Export",
	} {
		err := conn.Invoke(grpcCtx(t, "authorization", "Bearer good"), method, struct{}{}, &struct{}{}, grpc.ForceCodecV2(garbageCodec{}))
		requireStatus(t, err, codes.InvalidArgument, apierr.InvalidArgument)
	}
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
}
