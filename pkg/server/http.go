package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/latchkey/latchkey/gen/openapi"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// Gateway is one service's generated REST handlers and the connection they call through.
type Gateway struct {
	Conn     *grpc.ClientConn
	Register func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error
}

// HTTPConfig configures the REST bridge and the operational endpoints beside it.
type HTTPConfig struct {
	Logger   *zap.Logger
	Gateways []Gateway
	// Ready reports whether every dependency is up; /healthz answers 503 until it does.
	Ready func() bool
	// MaxBodyBytes bounds a request body; 1 MiB when zero. Bigger bodies get 413.
	MaxBodyBytes int64
	// Rejected, if set, is told about calls the bridge refused before they reached gRPC
	// (malformed JSON, bad query parameters, oversized bodies), so the audit trail has them
	// too. method is the gRPC method the route maps to.
	Rejected func(ctx context.Context, c Call)
}

// forwardedHeaders are the HTTP headers passed on to gRPC handlers as metadata.
var forwardedHeaders = map[string]string{
	"Authorization":   "authorization",
	"Idempotency-Key": "idempotency-key",
	"X-Request-Id":    requestid.MetadataKey,
	"User-Agent":      "x-user-agent",
	"Origin":          "x-origin",
}

// NewHTTPHandler returns the REST bridge with /healthz, /metrics and /openapi.json.
func NewHTTPHandler(ctx context.Context, cfg HTTPConfig) (http.Handler, error) {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	marshaler := &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			k, ok := forwardedHeaders[textproto.CanonicalMIMEHeaderKey(h)]
			return k, ok
		}),
		// Response metadata stays internal; the request id header is set by the middleware.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithErrorHandler(errorHandler(cfg.Rejected)),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.SetQueryParameterParser(&strictQuery{}),
	)
	for _, g := range cfg.Gateways {
		if err := g.Register(ctx, gw, g.Conn); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if cfg.Ready != nil && !cfg.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	})
	mux.Handle("/", gw)
	return withRequest(cfg, mux), nil
}

type bodyState struct{ tooLarge atomic.Bool }

type bodyStateKey struct{}

// limitedBody records that the limit was hit, so the error handler can answer 413 rather
// than the decoder's generic complaint.
type limitedBody struct {
	io.ReadCloser
	state *bodyState
}

func (b limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.state.tooLarge.Store(true)
	}
	return n, err
}

// withRequest gives every request an id (echoed in X-Request-Id) and a body limit.
func withRequest(cfg HTTPConfig, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, supplied := requestid.Resolve(r.Header.Get(requestid.Header))
		r.Header.Set(requestid.Header, id)
		w.Header().Set(requestid.Header, id)
		ctx := requestid.With(r.Context(), id, supplied)
		if r.ContentLength > cfg.MaxBodyBytes {
			writeError(w, r.WithContext(ctx), apierr.New(apierr.PayloadTooLarge, "the request body is over %d bytes", cfg.MaxBodyBytes))
			return
		}
		st := &bodyState{}
		r.Body = limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, cfg.MaxBodyBytes), state: st}
		ctx = context.WithValue(ctx, bodyStateKey{}, st)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func errorHandler(rejected func(context.Context, Call)) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		e := apierr.FromError(err)
		if st, ok := r.Context().Value(bodyStateKey{}).(*bodyState); ok && st.tooLarge.Load() {
			e = apierr.New(apierr.PayloadTooLarge, "the request body is too large")
		}
		// An error without ErrorInfo was made by the bridge itself: the call never reached
		// the gRPC chain, which would have logged and audited it.
		if st, ok := status.FromError(err); rejected != nil && ok && !hasErrorInfo(st) {
			if method, ok := runtime.RPCMethod(ctx); ok {
				md, _ := metadata.FromOutgoingContext(ctx)
				in := metadata.NewIncomingContext(requestid.With(ctx, requestid.From(r.Context()), requestid.Supplied(r.Context())), md)
				// Not e.Message: a decoder's complaint quotes the input, which may be a password.
				rejected(in, Call{Method: method, Code: string(e.Code), Message: "the request could not be decoded"})
			}
		}
		writeError(w, r, e)
	}
}

func hasErrorInfo(st *status.Status) bool {
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return true
		}
	}
	return false
}

func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, status int) {
	switch status {
	case http.StatusMethodNotAllowed:
		writeError(w, r, apierr.New(apierr.MethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	case http.StatusNotFound:
		writeError(w, r, apierr.New(apierr.NotFound, "no such route: %s %s", r.Method, r.URL.Path))
	default:
		writeError(w, r, apierr.New(apierr.InvalidArgument, "the request could not be routed"))
	}
}

// WriteError writes the error envelope (docs/rest.md, "Error envelope") for any error.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, r, apierr.FromError(err))
}

func writeError(w http.ResponseWriter, r *http.Request, e *apierr.Error) {
	body := map[string]any{
		"error":             e.Code,
		"message":           e.Message,
		"request_id":        requestid.From(r.Context()),
		"documentation_url": apierr.DocsBase + string(e.Code),
	}
	for k, v := range e.Metadata {
		if _, taken := body[k]; !taken {
			body[k] = v
		}
	}
	if e.RetryAfter > 0 {
		secs := apierr.RetryAfterSeconds(e.RetryAfter)
		body["retry_after_seconds"] = secs
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(apierr.HTTPStatus(e.Code))
	_ = json.NewEncoder(w).Encode(body)
}

// ServeHTTP serves h on lis until ctx ends, then shuts down within grace.
func ServeHTTP(ctx context.Context, lis net.Listener, h http.Handler, grace time.Duration) error {
	// Bounded reads: a client that declares a body and sends it slowly, or holds an idle
	// connection, must not hold a goroutine and a buffer for ever.
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return srv.Close()
	}
	return nil
}
