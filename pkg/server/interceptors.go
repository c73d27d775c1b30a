package server

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/requestid"
)

var callSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "latchkey_grpc_server_handling_seconds",
	Help:    "Time to handle a unary gRPC call, by service, method and Latchkey error code.",
	Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
}, []string{"service", "method", "code"})

type interceptors struct {
	name         string
	log          *zap.Logger
	authenticate Authenticator
	onCall       func(context.Context, Call)
	codec        *requestCodec
}

// callInfo lets inner interceptors tell the logging one who the caller was.
type callInfo struct {
	principal *auth.Principal
	authErr   error
}

// Call is what OnCall hooks learn about each finished unary call.
type Call struct {
	Method string
	// Principal is the authenticated caller, nil when none; AuthErr why a presented
	// credential was refused.
	Principal *auth.Principal
	AuthErr   error
	Request   any
	// Response is nil when the call failed.
	Response any
	// Code is "ok" or the client-facing error code; Message the error's text.
	Code     string
	Message  string
	Duration time.Duration
}

type callInfoKey struct{}

func (i *interceptors) requestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	return next(i.withRequestID(ctx), req)
}

func (i *interceptors) withRequestID(ctx context.Context) context.Context {
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestid.MetadataKey); len(v) > 0 {
			id = v[0]
		}
	}
	id, supplied := requestid.Resolve(id)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestid.MetadataKey, id))
	ctx = requestid.With(ctx, id, supplied)
	return logging.With(ctx, i.log.With(zap.String("request_id", id)))
}

func (i *interceptors) logging(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ci := &callInfo{}
	resp, err := next(context.WithValue(ctx, callInfoKey{}, ci), req)
	code, message := "ok", ""
	if err != nil {
		e := apierr.FromError(err)
		code, message = string(e.Code), e.Message
	}
	elapsed := time.Since(start)
	callSeconds.WithLabelValues(i.name, info.FullMethod, code).Observe(elapsed.Seconds())
	fields := []zap.Field{zap.String("method", info.FullMethod), zap.String("code", code), zap.Duration("duration", elapsed)}
	if p := ci.principal; p != nil {
		fields = append(fields, zap.String("account_id", p.AccountID), zap.String("actor", p.Actor()))
	}
	logging.From(ctx).Info("call", fields...)
	if i.onCall != nil {
		c := Call{Method: info.FullMethod, Principal: ci.principal, AuthErr: ci.authErr, Request: req, Code: code, Message: message, Duration: elapsed}
		if err == nil {
			c.Response = resp
		}
		i.onCall(ctx, c)
	}
	return resp, err
}

// databaseUnreachable answers a call whose database (the primary, or a replica it reads)
// could not be reached: the client may retry, as for any unavailable.
var databaseUnreachable = &apierr.Error{Code: apierr.Unavailable, Message: "the database cannot be reached; retry shortly", RetryAfter: time.Second}

// errors makes every error a client-facing status; causes of internal errors are logged
// here and never sent.
func (i *interceptors) errors(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	resp, err := next(ctx, req)
	if err == nil {
		return resp, nil
	}
	e := apierr.FromError(err)
	switch {
	case e.Code == apierr.Internal && postgres.Unreachable(err):
		logging.From(ctx).Warn("database unreachable", zap.String("method", info.FullMethod), zap.Error(err))
		e = databaseUnreachable
	case e.Code == apierr.Internal:
		logging.From(ctx).Error("internal error", zap.String("method", info.FullMethod), zap.Error(err))
	}
	return nil, e.GRPCStatus().Err()
}

// rejectMalformed answers InvalidArgument for a request message that did not decode (see
// requestCodec); it sits inside logging, so such calls are logged with their code, and
// before everything that would look at the message.
func (i *interceptors) rejectMalformed(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := i.codec.take(req); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (i *interceptors) recovery(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			logging.From(ctx).Error("panic", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			resp, err = nil, apierr.New(apierr.Internal, "internal error")
		}
	}()
	return next(ctx, req)
}

func (i *interceptors) authentication(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	token := auth.BearerToken(ctx)
	if token == "" || i.authenticate == nil {
		return next(ctx, req)
	}
	p, err := i.authenticate(ctx, token)
	if err != nil {
		if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
			ci.authErr = err
		}
		// Handlers that need a caller return this; public ones (sign-up, login) go on.
		return next(auth.WithError(ctx, err), req)
	}
	if ci, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		ci.principal = p
	}
	ctx = auth.With(ctx, p)
	ctx = logging.With(ctx, logging.From(ctx).With(zap.String("account_id", p.AccountID)))
	return next(ctx, req)
}

type wrappedStream struct {
	grpc.ServerStream
	ctx   context.Context
	codec *requestCodec
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// RecvMsg answers InvalidArgument for a message that did not decode (see requestCodec).
func (w *wrappedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return w.codec.take(m)
}

func (i *interceptors) streamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, &wrappedStream{ServerStream: ss, ctx: i.withRequestID(ss.Context()), codec: i.codec})
}

func (i *interceptors) streamRecovery(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			logging.From(ss.Context()).Error("panic", zap.String("method", info.FullMethod), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			err = status.Error(apierr.New(apierr.Internal, "internal error").GRPCStatus().Code(), "internal error")
		}
	}()
	return next(srv, ss)
}
