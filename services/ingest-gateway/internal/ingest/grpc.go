package ingest

import (
	"bytes"
	"context"

	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	// OTLP exporters commonly send grpc-encoding: gzip; grpc-go bounds the inflated size by
	// the server's MaxRecvMsgSize, so this opens no zip-bomb hole.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// RegisterGRPC registers the OTLP collector services (TraceService, MetricsService,
// LogsService Export) on s. Errors are *apierr.Error values, which are gRPC statuses with
// ErrorInfo (and RetryInfo when retryable) with or without pkg/server's interceptors.
//
// A request reaches the handler as the bytes the client sent (see grpcRequest): the key is
// checked before anything is decoded, as over HTTP, and the bytes are then decoded, checked
// and published by the same functions as an OTLP/HTTP protobuf body, so a body gRPC cannot
// decode is INVALID_ARGUMENT like any other bad request.
func RegisterGRPC(s *grpc.Server, auth grant.Authorizer, pub *Publisher, cfg Config) {
	e := &grpcExporter{auth: auth, pub: pub, cfg: cfg.withDefaults()}
	for sig, sd := range map[Signal]*grpc.ServiceDesc{
		Traces:  &coltrace.TraceService_ServiceDesc,
		Metrics: &colmetrics.MetricsService_ServiceDesc,
		Logs:    &collogs.LogsService_ServiceDesc,
	} {
		s.RegisterService(&grpc.ServiceDesc{
			ServiceName: sd.ServiceName,
			HandlerType: (*any)(nil),
			Methods:     []grpc.MethodDesc{{MethodName: "Export", Handler: e.handler(sig, "/"+sd.ServiceName+"/Export")}},
			Metadata:    sd.Metadata,
		}, e)
	}
}

type grpcExporter struct {
	auth grant.Authorizer
	pub  *Publisher
	cfg  Config
}

// grpcRequest is an Export request as sent. pdata (which this package imports) registers gRPC's "proto"
// codec and hands a type with pdata's UnmarshalProto/MarshalProto/SizeProto methods the
// raw bytes; the buffer is pooled, released once the call is over.
type grpcRequest struct{ buf *bytes.Buffer }

// UnmarshalProto keeps a copy of data (the codec reuses its buffer).
func (r *grpcRequest) UnmarshalProto(data []byte) error {
	if r.buf == nil {
		r.buf = getBuffer()
	}
	r.buf.Reset()
	r.buf.Write(data)
	return nil
}

// SizeProto and MarshalProto complete the codec's interface; the server never marshals a
// request.
func (r *grpcRequest) SizeProto() int { return len(r.bytes()) }

// MarshalProto copies the request into buf.
func (r *grpcRequest) MarshalProto(buf []byte) int { return copy(buf, r.bytes()) }

func (r *grpcRequest) bytes() []byte {
	if r.buf == nil {
		return nil
	}
	return r.buf.Bytes()
}

func (r *grpcRequest) release() {
	if r.buf != nil {
		putBuffer(r.buf)
		r.buf = nil
	}
}

// handler is the method handler of sig's Export, shaped like generated code's.
func (e *grpcExporter) handler(sig Signal, method string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := &grpcRequest{}
		defer in.release()
		if err := dec(in); err != nil {
			return nil, err
		}
		export := func(ctx context.Context, req any) (any, error) {
			return e.export(ctx, sig, req.(*grpcRequest).bytes())
		}
		if interceptor == nil {
			return export(ctx, in)
		}
		return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, export)
	}
}

// export authorizes the call and publishes the request, answering an empty
// Export*ServiceResponse (partial_success unset, as OTLP asks on full success).
func (e *grpcExporter) export(ctx context.Context, sig Signal, body []byte) (any, error) {
	err := e.exportAuthorized(e.requestContext(ctx), sig, body)
	code := "ok"
	if err != nil {
		code = string(err.Code)
	}
	requestsTotal.WithLabelValues(transportOTLPGRPC, string(sig), code).Inc()
	if err != nil {
		return nil, e.cfg.grpcError(err)
	}
	switch sig {
	case Traces:
		return &coltrace.ExportTraceServiceResponse{}, nil
	case Metrics:
		return &colmetrics.ExportMetricsServiceResponse{}, nil
	default:
		return &collogs.ExportLogsServiceResponse{}, nil
	}
}

func (e *grpcExporter) exportAuthorized(ctx context.Context, sig Signal, body []byte) *apierr.Error {
	md, _ := metadata.FromIncomingContext(ctx)
	key, aerr := presentedKey(first(md, "authorization"), first(md, "x-api-key"))
	if aerr != nil {
		return aerr
	}
	req := grant.Request{Key: key, Origin: first(md, "origin")}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		req.ClientIP = clientIP(p.Addr.String())
	}
	g, aerr := authorize(ctx, e.auth, req, logging.From(ctx))
	if g.Notice != "" {
		// Header metadata (Pairs lower-cases the name) goes out with the answer, whatever it turns out to be.
		if err := grpc.SetHeader(ctx, metadata.Pairs(grant.NoticeHeader, g.Notice)); err != nil {
			logging.From(ctx).Debug("cannot set the key notice header", zap.Error(err))
		}
	}
	if aerr != nil {
		return aerr
	}
	payload, items, err := decodeOTLP(sig, formatProto, body)
	if err != nil {
		return apierr.New(apierr.InvalidArgument, "%s", decodeError(sig, formatProto, err))
	}
	if err := publishExport(ctx, e.pub, g, sig, payload, items); err != nil {
		return apierr.FromError(err)
	}
	return nil
}

// requestContext gives the call a request id: the one pkg/server's interceptor set, or, on
// a bare server, one from x-request-id metadata (see requestid.Resolve).
func (e *grpcExporter) requestContext(ctx context.Context) context.Context {
	if requestid.From(ctx) != "" {
		return ctx
	}
	md, _ := metadata.FromIncomingContext(ctx)
	id, supplied := requestid.Resolve(first(md, requestid.MetadataKey))
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestid.MetadataKey, id))
	ctx = requestid.With(ctx, id, supplied)
	return logging.With(ctx, e.cfg.Logger.WithLazy(zap.String("request_id", id)))
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
