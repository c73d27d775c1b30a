package ingest

import (
	"context"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
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
func RegisterGRPC(s *grpc.Server, auth grant.Authorizer, pub *Publisher, cfg Config) {
	e := &grpcExporter{auth: auth, pub: pub, cfg: cfg.withDefaults()}
	ptraceotlp.RegisterGRPCServer(s, &tracesServer{e: e})
	pmetricotlp.RegisterGRPCServer(s, &metricsServer{e: e})
	plogotlp.RegisterGRPCServer(s, &logsServer{e: e})
}

type grpcExporter struct {
	auth grant.Authorizer
	pub  *Publisher
	cfg  Config
}

type tracesServer struct {
	ptraceotlp.UnimplementedGRPCServer
	e *grpcExporter
}

func (s *tracesServer) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	if err := s.e.export(ctx, Traces, req.Traces().SpanCount(), req.MarshalProto); err != nil {
		return ptraceotlp.ExportResponse{}, err
	}
	return ptraceotlp.NewExportResponse(), nil
}

type metricsServer struct {
	pmetricotlp.UnimplementedGRPCServer
	e *grpcExporter
}

func (s *metricsServer) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	if err := s.e.export(ctx, Metrics, req.Metrics().DataPointCount(), req.MarshalProto); err != nil {
		return pmetricotlp.ExportResponse{}, err
	}
	return pmetricotlp.NewExportResponse(), nil
}

type logsServer struct {
	plogotlp.UnimplementedGRPCServer
	e *grpcExporter
}

func (s *logsServer) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	if err := s.e.export(ctx, Logs, req.Logs().LogRecordCount(), req.MarshalProto); err != nil {
		return plogotlp.ExportResponse{}, err
	}
	return plogotlp.NewExportResponse(), nil
}

// export authorizes the call and publishes the request. gRPC has decoded the message
// before any handler runs, so unlike HTTP the key is checked after decoding; the server's
// MaxRecvMsgSize bounds that work.
func (e *grpcExporter) export(ctx context.Context, sig Signal, items int, marshal func() ([]byte, error)) error {
	err := e.exportAuthorized(e.requestContext(ctx), sig, items, marshal)
	code := "ok"
	if err != nil {
		code = string(err.Code)
	}
	requestsTotal.WithLabelValues(transportOTLPGRPC, string(sig), code).Inc()
	if err != nil {
		return err
	}
	return nil
}

func (e *grpcExporter) exportAuthorized(ctx context.Context, sig Signal, items int, marshal func() ([]byte, error)) *apierr.Error {
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
	if aerr != nil {
		return aerr
	}
	if items == 0 {
		return nil // an empty export carries no data: nothing to publish
	}
	payload, err := marshal()
	if err != nil {
		logging.From(ctx).Error("marshal export request", zap.Error(err))
		return apierr.New(apierr.Internal, "internal error")
	}
	if err := e.pub.Publish(ctx, g, sig, payload); err != nil {
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
