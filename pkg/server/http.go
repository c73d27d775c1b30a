package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/latchkey/latchkey/gen/openapi"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/cors"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// Gateway is one service's generated REST handlers and the connection they call through.
type Gateway struct {
	Conn     *grpc.ClientConn
	Register func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error
	// BrowserPaths are the paths of the service's routes that a web page on another origin
	// may call (the keys service's /v1/session-keys): they answer preflights and name the
	// caller's Origin back, by BrowserCORS. The handler still judges the origin. Every
	// other route answers no preflight and sends no CORS header.
	BrowserPaths []string
	// Handlers are plain HTTP handlers served on the REST listener beside the generated
	// routes, each on its exact path (no method: the handler checks it), for the rare route
	// that cannot be a gRPC call: the keys service's signed leak reports, whose signature
	// covers the raw body. They run behind the same Edge as every route (request id, header
	// and body limits, recovery, the envelope through WriteError). Two gateways naming the
	// same path are a start-up error.
	Handlers map[string]http.Handler
}

// BrowserCORS is the CORS policy of the management routes named in Gateway.BrowserPaths:
// POST, with a bearer token, a JSON body and a request id.
var BrowserCORS = cors.Policy{
	Methods: []string{"POST"},
	Headers: []string{"Authorization", "Content-Type", "X-Request-Id"},
	Expose:  []string{"X-Request-Id", "Retry-After"},
	MaxAge:  10 * time.Minute,
}

// HTTPConfig configures the REST bridge and the operational endpoints beside it.
type HTTPConfig struct {
	Logger   *zap.Logger
	Gateways []Gateway
	// Ready reports whether every dependency is up; /healthz answers 503 until it does.
	Ready func() bool
	// MaxBodyBytes bounds a request body; DefaultMaxBodyBytes when zero. Bigger bodies get 413.
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

// NewHTTPHandler returns the REST bridge and /openapi.json behind the shared Edge (request
// id, limits, recovery, /healthz, /metrics).
func NewHTTPHandler(ctx context.Context, cfg HTTPConfig) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	marshaler := strictJSON{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			k, ok := forwardedHeaders[textproto.CanonicalMIMEHeaderKey(h)]
			return k, ok
		}),
		// Response metadata stays internal; the request id header is set by the Edge.
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
	handlerPaths := map[string]struct{}{"/openapi.json": {}}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	})
	for _, g := range cfg.Gateways {
		for path, h := range g.Handlers {
			if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.ContainsAny(path, " {}") {
				return nil, fmt.Errorf("server: handler path %q must be an exact path", path)
			}
			if _, taken := handlerPaths[path]; taken {
				return nil, fmt.Errorf("server: two handlers for %s", path)
			}
			handlerPaths[path] = struct{}{}
			mux.Handle(path, h)
		}
	}
	// Inside the CORS of browser routes, so that a page is shown the refusal too.
	mux.Handle("/", browserRoutes(cfg.Gateways, forwardable(bodiless(gw))))
	return Edge(EdgeConfig{Name: "rest", Logger: cfg.Logger, Ready: cfg.Ready, MaxBodyBytes: cfg.MaxBodyBytes}, mux), nil
}

// forwardable refuses a request whose forwardedHeaders gRPC metadata cannot carry as sent:
// a value that is not printable ASCII (grpc-gateway would drop it with a line on stderr,
// and a call with an Idempotency-Key would silently run again), or a header sent more than
// once (only the first would go on, so an Origin or Authorization checked here could
// differ from the one a proxy or a log saw). 400 invalid_argument, naming the header.
// User-Agent only informs the audit log: its first value goes on with every byte outside
// printable ASCII made '?', rather than a client being refused for its name.
func forwardable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name := range forwardedHeaders {
			vs := r.Header.Values(name)
			if name == "User-Agent" {
				if len(vs) > 1 || len(vs) == 1 && !printableASCII(vs[0]) {
					r.Header.Set(name, strings.Map(func(c rune) rune {
						if c < 0x20 || c > 0x7e {
							return '?'
						}
						return c
					}, vs[0]))
				}
				continue
			}
			if len(vs) > 1 {
				WriteError(w, r, apierr.New(apierr.InvalidArgument, "the %s header may be sent once", name))
				return
			}
			if len(vs) == 1 && !printableASCII(vs[0]) {
				WriteError(w, r, apierr.New(apierr.InvalidArgument, "the %s header must be printable ASCII", name))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bodiless refuses a body on GET and DELETE, which the bridge would drop unread: a caller
// moving DELETE /v1/keys/{id} a `:revoke` body would lose its reason and its receipt with
// no error. Their parameters go in the query (docs/rest.md). 400 invalid_argument.
func bodiless(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodDelete {
			// One byte tells; nothing is lost, as a request with a body goes no further.
			var one [1]byte
			if n, _ := io.ReadFull(r.Body, one[:]); n > 0 {
				WriteError(w, r, apierr.New(apierr.InvalidArgument, "%s takes no body: put its parameters in the query", r.Method))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// printableASCII reports whether s is what gRPC metadata carries: bytes 0x20 to 0x7e.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// browserRoutes applies BrowserCORS to the gateways' BrowserPaths (exact paths) and
// leaves every other route as it is.
func browserRoutes(gws []Gateway, next http.Handler) http.Handler {
	paths := map[string]bool{}
	for _, g := range gws {
		for _, p := range g.BrowserPaths {
			paths[p] = true
		}
	}
	if len(paths) == 0 {
		return next
	}
	browser := BrowserCORS.Wrap(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if paths[r.URL.Path] {
			browser.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// strictJSON is the bridge's JSON marshaler, whose request bodies are exactly one JSON
// value: grpc-gateway's decoder reads the first value and ignores the rest, so `{}x` or
// `{"name":"a"}{"name":"b"}` would be taken as valid. An empty body stays allowed (the
// generated handlers treat io.EOF as "no fields").
type strictJSON struct{ *runtime.JSONPb }

// NewDecoder returns a decoder that refuses anything but white space after the value.
func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	dec := json.NewDecoder(r)
	one := runtime.DecoderWrapper{Decoder: dec, UnmarshalOptions: m.UnmarshalOptions}
	return runtime.DecoderFunc(func(v any) error {
		if err := one.Decode(v); err != nil {
			return err
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("the request body must be one JSON value with nothing after it")
		}
		return nil
	})
}

func errorHandler(rejected func(context.Context, Call)) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		e := apierr.FromError(err)
		if BodyTooLarge(r.Context()) {
			e = apierr.New(apierr.PayloadTooLarge, "the request body is too large")
		}
		// An error without ErrorInfo was made by the bridge itself: the call never reached
		// the gRPC chain, which would have logged and audited it.
		st, ok := status.FromError(err)
		bridgeMade := ok && !hasErrorInfo(st)
		if bridgeMade && e.Code == apierr.InvalidArgument {
			e = apierr.New(apierr.InvalidArgument, "%s", decodeComplaint(st.Message()))
		}
		if rejected != nil && bridgeMade {
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

// Where a decoder's complaint names what was wrong, by field or parameter name.
var (
	namedField = regexp.MustCompile(`(?:unknown field|parsing field|parameter:) "?([A-Za-z_][A-Za-z0-9_.]{0,63})"?`)
	ownWords   = []string{"unknown query parameter ", "the request body must be one JSON value"}
)

// decodeComplaint is what a client is told when the bridge cannot decode its request: the
// field or parameter at fault when the decoder names one, never the value. Decoders quote
// the offending input ("unexpected token hunter2", `parsing "hunter2"`), and input is
// where passwords and keys are.
func decodeComplaint(msg string) string {
	for _, own := range ownWords {
		if strings.HasPrefix(msg, own) {
			return msg
		}
	}
	if m := namedField.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%q is unknown or has a value of the wrong type for this call", m[1])
	}
	return "the request body is not valid JSON for this call (a syntax error or a value of the wrong type)"
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
