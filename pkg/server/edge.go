package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// MaxHeaderBytes bounds a request's header section on every HTTP listener: the request
// line, Host and every header field, each counted as sent ("Name: value\r\n"). A bigger
// one is answered 431 request_header_too_large in the error envelope, with X-Request-Id.
const MaxHeaderBytes = 32 << 10

// headerReadLimit is what net/http itself reads of a header section (http.Server's
// MaxHeaderBytes; it adds 4 KiB of its own). It is twice MaxHeaderBytes so that a header
// over the limit still reaches the edge, which answers in the envelope; only one over this
// gets net/http's own plain-text 431.
const headerReadLimit = 2 * MaxHeaderBytes

// DefaultMaxBodyBytes is the edge's body limit when EdgeConfig leaves it zero.
const DefaultMaxBodyBytes = 1 << 20

// EdgeConfig configures the HTTP edge (see Edge).
type EdgeConfig struct {
	// Name labels the listener in latchkey_http_edge_refused_total ("rest", "ingest").
	Name string
	// Logger gets panics; each request's logger (logging.From) carries its request_id.
	Logger *zap.Logger
	// Ready reports whether every dependency is up; GET /healthz answers 503 until it
	// does. Nil means always ready.
	Ready func() bool
	// MaxBodyBytes bounds a request body as sent (DefaultMaxBodyBytes when zero): a
	// declared Content-Length over it is answered 413 payload_too_large at once, and a
	// body that grows past it fails to read with *http.MaxBytesError (BodyTooLarge then
	// reports true).
	MaxBodyBytes int64
	// WriteError writes the edge's own refusals (431, 413, a bad path or query, a panic's
	// 500); nil writes the error envelope, as WriteError does. A listener whose handler
	// words its errors its own way (the ingest gateway under a profile's gateway_errors)
	// passes its writer here too, so that every error of the listener has one shape.
	WriteError func(w http.ResponseWriter, r *http.Request, e *apierr.Error)
}

// Edge wraps an HTTP listener's own handler in what every Latchkey HTTP listener shares:
// a request id (the client's X-Request-Id when well formed, else a new one; in the
// context, on the request's logger and echoed in the response), the header limit
// (MaxHeaderBytes), the body limit, panic recovery (500 internal in the envelope), and
// GET /healthz and GET /metrics. Errors of its own are the envelope of WriteError, or
// what EdgeConfig.WriteError writes.
func Edge(cfg EdgeConfig, app http.Handler) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Name == "" {
		cfg.Name = "http"
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
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
	mux.Handle("/", app)
	return &edge{cfg: cfg, next: mux}
}

var edgeRefused = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "latchkey_http_edge_refused_total",
	Help: "Requests the HTTP edge answered itself, before the listener's handler, by listener and error code (request_header_too_large, payload_too_large, internal for a panic).",
}, []string{"listener", "code"})

type edge struct {
	cfg  EdgeConfig
	next http.Handler
}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	size := headerBytes(r) // before the request id header is rewritten
	id, supplied := requestid.Resolve(r.Header.Get(requestid.Header))
	// Set on the request too: the REST bridge forwards it to gRPC as metadata.
	r.Header.Set(requestid.Header, id)
	w.Header().Set(requestid.Header, id)
	// WithLazy: most requests log nothing, so the field is encoded only if one does.
	log := e.cfg.Logger.WithLazy(zap.String("request_id", id))
	st := &bodyState{}
	ctx := context.WithValue(logging.With(requestid.With(r.Context(), id, supplied), log), bodyStateKey{}, st)
	r = r.WithContext(ctx)
	defer func() {
		// net/http would swallow a panic by cutting the connection; answer properly instead.
		if p := recover(); p != nil {
			if err, ok := p.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(p)
			}
			log.Error("panic", zap.String("method", r.Method), zap.String("path", r.URL.Path),
				zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			e.refuse(w, r, apierr.New(apierr.Internal, "internal error"))
		}
	}()
	if size > MaxHeaderBytes {
		e.refuse(w, r, apierr.New(apierr.RequestHeaderTooLarge,
			"the request's headers are %d bytes; at most %d are accepted", size, MaxHeaderBytes))
		return
	}
	if err := checkURL(r.URL); err != nil {
		e.refuse(w, r, err)
		return
	}
	if r.ContentLength > e.cfg.MaxBodyBytes {
		e.refuse(w, r, apierr.New(apierr.PayloadTooLarge, "the request body is over %d bytes", e.cfg.MaxBodyBytes))
		return
	}
	r.Body = limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, e.cfg.MaxBodyBytes), state: st}
	e.next.ServeHTTP(w, r)
}

// checkURL holds a request's path and query to ValidText, whether or not the route reads
// them: a route that takes no query parameter must not answer 200 to ?x=%ff while one
// that takes some answers 400. A query that does not parse at all is refused too.
func checkURL(u *url.URL) *apierr.Error {
	if !ValidText(u.Path) {
		return apierr.New(apierr.InvalidArgument, "the request path must be valid UTF-8 without NUL characters")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return apierr.New(apierr.InvalidArgument, "the query string is not valid URL encoding")
	}
	for k, vs := range q {
		if !ValidText(k) || slices.ContainsFunc(vs, func(v string) bool { return !ValidText(v) }) {
			return apierr.New(apierr.InvalidArgument, "query parameters must be valid UTF-8 without NUL characters")
		}
	}
	return nil
}

func (e *edge) refuse(w http.ResponseWriter, r *http.Request, err *apierr.Error) {
	edgeRefused.WithLabelValues(e.cfg.Name, string(err.Code)).Inc()
	if e.cfg.WriteError != nil {
		e.cfg.WriteError(w, r, err)
		return
	}
	writeError(w, r, err)
}

// headerBytes is the size of r's header section as the client sent it (HTTP/1.1 framing):
// request line, Host and each field as "Name: value\r\n".
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	if r.Host != "" {
		n += len("Host: \r\n") + len(r.Host)
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

type bodyState struct{ tooLarge atomic.Bool }

type bodyStateKey struct{}

// BodyTooLarge reports whether the request of ctx read past the edge's body limit, so a
// handler whose decoder hides the cause can still answer 413.
func BodyTooLarge(ctx context.Context) bool {
	st, ok := ctx.Value(bodyStateKey{}).(*bodyState)
	return ok && st.tooLarge.Load()
}

// limitedBody records that the limit was hit, for BodyTooLarge.
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

// ServeHTTP serves h (wrapped in Edge, normally) on lis until ctx ends, then shuts down
// within grace.
func ServeHTTP(ctx context.Context, lis net.Listener, h http.Handler, grace time.Duration) error {
	// Bounded reads: a client that declares a body and sends it slowly, or holds an idle
	// connection, must not hold a goroutine and a buffer for ever.
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: headerReadLimit,
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
