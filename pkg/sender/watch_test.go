package sender

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	collogs "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

func TestParseNotice(t *testing.T) {
	grace := time.Date(2026, 12, 30, 8, 0, 0, 0, time.UTC)
	for value, want := range map[string]*Notice{
		"claimed; grace_until=2026-12-30T08:00:00Z":                                   {Kind: "claimed", GraceUntil: grace},
		"claimed;grace_until=2026-12-30T08:00:00Z":                                    {Kind: "claimed", GraceUntil: grace},
		"  Claimed ;  GRACE_UNTIL = 2026-12-30T09:00:00+01:00 ":                       {Kind: "claimed", GraceUntil: grace},
		`claimed; grace_until="2026-12-30T08:00:00Z"`:                                 {Kind: "claimed", GraceUntil: grace},
		"claimed; grace_until=2026-12-30T08:00:00.5Z":                                 {Kind: "claimed", GraceUntil: grace.Add(500 * time.Millisecond)},
		"claimed; by=acct_1; grace_until=2026-12-30T08:00:00Z":                        {Kind: "claimed", GraceUntil: grace},
		"claimed; grace_until=2026-12-30T08:00:00Z; grace_until=2027-01-01T00:00:00Z": {Kind: "claimed", GraceUntil: grace},
		// Claimed, but the date is missing or unreadable: the reminder still matters.
		"claimed":                         {Kind: "claimed"},
		"claimed; grace_until=tomorrow":   {Kind: "claimed"},
		"claimed; grace_until=2026-12-30": {Kind: "claimed"},
		"claimed; grace_until":            {Kind: "claimed"},
		// Not a notice this package knows: ignored, not misread.
		"": nil,
		"rotated; grace_until=2026-12-30T08:00:00Z":  nil,
		"claimedx; grace_until=2026-12-30T08:00:00Z": nil,
		"grace_until=2026-12-30T08:00:00Z":           nil,
		"claimed grace_until=2026-12-30T08:00:00Z":   nil,
	} {
		got, ok := parseNotice(value)
		if want == nil {
			require.False(t, ok, "%q", value)
			continue
		}
		require.True(t, ok, "%q", value)
		require.Equal(t, want.Kind, got.Kind, "%q", value)
		require.True(t, want.GraceUntil.Equal(got.GraceUntil), "%q: grace_until %v, want %v", value, got.GraceUntil, want.GraceUntil)
	}
}

func TestParseEnvelope(t *testing.T) {
	key := generate(t, keyformat.Default(), "ingest")
	for name, tc := range map[string]struct {
		status               int
		body                 string
		code, message, reqID string
		reason               string
	}{
		"latchkey envelope": {
			401, `{"error":"unauthenticated","message":"the key has been revoked","request_id":"req_1","documentation_url":"x","reason":"revoked"}`,
			"unauthenticated", "the key has been revoked", "req_1", "revoked",
		},
		"a reason that is no code": {401, `{"error":"unauthenticated","message":"m","reason":"Not A Code"}`, "unauthenticated", "m", "", ""},
		"a profile's own body":     {401, `{"error": "Missing or invalid API key"}`, "unauthenticated", "Missing or invalid API key", "", ""},
		"origin, own body":         {403, `{"error": "Origin not allowed"}`, "permission_denied", "Origin not allowed", "", ""},
		"not JSON":                 {403, `forbidden`, "permission_denied", "Forbidden", "", ""},
		"empty":                    {401, ``, "unauthenticated", "Unauthorized", "", ""},
		"a quoted key":             {401, `{"error":"unauthenticated","message":"no such key ` + key + `"}`, "unauthenticated", "no such key lk_ing_" + keyformat.Redacted, "", ""},
	} {
		t.Run(name, func(t *testing.T) {
			e := parseEnvelope(tc.status, []byte(tc.body))
			require.Equal(t, envelope{code: tc.code, message: tc.message, requestID: tc.reqID, reason: tc.reason}, e)
		})
	}
}

// exportAll records one span, one metric point and one log record and flushes them.
func exportAll(s *Sender) error {
	ctx := context.Background()
	_, span := s.TracerProvider().Tracer("test").Start(ctx, "op")
	span.End()
	c, _ := s.MeterProvider().Meter("test").Int64Counter("requests")
	c.Add(ctx, 1)
	var r otellog.Record
	r.SetBody(attribute.StringValue("hello"))
	s.LoggerProvider().Logger("test").Emit(ctx, r)
	return s.ForceFlush(ctx)
}

// The RoundTripper of the HTTP exporters: a claimed notice is kept and logged once; each
// distinct refusal is kept and logged once; the exporter still reads the error body.
func TestHTTPNoticeAndRejection(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	gw := newGateway(t)
	key := generate(t, reg, "anonymous")
	log, logs := newLog()
	s := start(t, Options{APIKey: key, Endpoint: gw.URL + "/otlp", Dir: t.TempDir(), Logger: log})
	require.Contains(t, logs.String(), "sending with an anonymous key: its data is kept for 48h")
	require.Contains(t, logs.String(), "/v1/keys:claim")

	require.NoError(t, exportAll(s))
	_, ok := s.Notice()
	require.False(t, ok)
	_, ok = s.LastRejection()
	require.False(t, ok)

	var paths sync.Map
	gw.answer(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, r.Header.Get("Content-Encoding"))
		w.Header().Add(NoticeHeader, "claimed; grace_until=2026-12-30T08:00:00Z")
		w.WriteHeader(http.StatusOK)
	})
	require.NoError(t, exportAll(s))
	require.NoError(t, exportAll(s))
	n, ok := s.Notice()
	require.True(t, ok)
	require.Equal(t, NoticeClaimed, n.Kind)
	require.Equal(t, time.Date(2026, 12, 30, 8, 0, 0, 0, time.UTC), n.GraceUntil.UTC())
	require.Equal(t, 1, logs.count("has been claimed"), logs.String())
	require.Contains(t, logs.String(), "until 2026-12-30T08:00:00Z")
	require.Contains(t, logs.String(), "set LATCHKEY_API_KEY")
	for _, sig := range []string{"traces", "metrics", "logs"} {
		enc, ok := paths.Load("/otlp/v1/" + sig)
		require.True(t, ok, "%s sent under the endpoint's path", sig)
		require.Equal(t, "gzip", enc)
	}

	refuse := func(status int, code, message string) {
		gw.answer(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "req_"+code)
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":"` + code + `","message":"` + message + `","request_id":"req_` + code + `"}`))
		})
	}
	refuse(http.StatusUnauthorized, "unauthenticated", "the key has been revoked")
	for range 2 {
		err := exportAll(s)
		require.ErrorContains(t, err, "401 Unauthorized")
		require.ErrorContains(t, err, `"message":"the key has been revoked"`, "the exporter still reads the body")
	}
	r, ok := s.LastRejection()
	require.True(t, ok)
	require.Equal(t, "unauthenticated", r.Code)
	require.Equal(t, "the key has been revoked", r.Message)
	require.Equal(t, http.StatusUnauthorized, r.HTTPStatus)
	require.Equal(t, codes.OK, r.GRPCCode)
	require.Equal(t, "req_unauthenticated", r.RequestID)
	require.Contains(t, []string{"traces", "metrics", "logs"}, r.Signal)
	require.Equal(t, 1, logs.count("the gateway refuses this key"), "once per code and message:\n%s", logs.String())

	refuse(http.StatusForbidden, "origin_not_allowed", "this origin may not use the key")
	require.Error(t, exportAll(s))
	r, _ = s.LastRejection()
	require.Equal(t, "origin_not_allowed", r.Code)
	require.Equal(t, http.StatusForbidden, r.HTTPStatus)
	require.Equal(t, 2, logs.count("the gateway refuses this key"), "a new code is reported:\n%s", logs.String())

	for _, a := range gw.received("Authorization") {
		require.Equal(t, []string{"Bearer " + key}, a)
	}
	require.NotContains(t, logs.String(), key)
	require.Equal(t, 1, logs.count("sending with an anonymous key"))
	gw.answer(nil) // so that the shutdown's last export passes
}

// grpcGateway is a minimal real OTLP/gRPC peer: each export is answered by answer, and the
// authorization metadata of each is kept.
type grpcGateway struct {
	coltrace.UnimplementedTraceServiceServer
	colmetrics.UnimplementedMetricsServiceServer
	collogs.UnimplementedLogsServiceServer
	addr string

	mu      sync.Mutex
	md      []metadata.MD
	answers func(ctx context.Context) error
}

func newGRPCGateway(t *testing.T) *grpcGateway {
	t.Helper()
	g := &grpcGateway{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, g)
	colmetrics.RegisterMetricsServiceServer(srv, metricsServer{g})
	collogs.RegisterLogsServiceServer(srv, logsServer{g})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	g.addr = lis.Addr().String()
	return g
}

func (g *grpcGateway) answer(fn func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answers = fn
}

// received returns the values of a metadata key in every call so far, one list per call.
func (g *grpcGateway) received(name string) [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out [][]string
	for _, md := range g.md {
		out = append(out, md.Get(name))
	}
	return out
}

func (g *grpcGateway) handle(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	g.mu.Lock()
	g.md = append(g.md, md.Copy())
	fn := g.answers
	g.mu.Unlock()
	if fn == nil {
		return nil
	}
	return fn(ctx)
}

func (g *grpcGateway) Export(ctx context.Context, _ *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	return &coltrace.ExportTraceServiceResponse{}, g.handle(ctx)
}

// metricsServer and logsServer give the other two services their Export.
type (
	metricsServer struct{ *grpcGateway }
	logsServer    struct{ *grpcGateway }
)

func (m metricsServer) Export(ctx context.Context, _ *colmetrics.ExportMetricsServiceRequest) (*colmetrics.ExportMetricsServiceResponse, error) {
	return &colmetrics.ExportMetricsServiceResponse{}, m.handle(ctx)
}

func (l logsServer) Export(ctx context.Context, _ *collogs.ExportLogsServiceRequest) (*collogs.ExportLogsServiceResponse, error) {
	return &collogs.ExportLogsServiceResponse{}, l.handle(ctx)
}

// The interceptor of the gRPC exporters: the notice in the header metadata, and a refusal
// as a status with Latchkey's ErrorInfo (made by pkg/apierr, as the gateway makes it).
func TestGRPCNoticeAndRejection(t *testing.T) {
	clearEnv(t)
	reg := keyformat.Default()
	gw := newGRPCGateway(t)
	key := generate(t, reg, "ingest")
	log, logs := newLog()
	s := start(t, Options{APIKey: key, Protocol: GRPC, Endpoint: "http://" + gw.addr, Dir: t.TempDir(), Logger: log})
	require.NoError(t, exportAll(s))
	require.NotContains(t, logs.String(), "anonymous")

	gw.answer(func(ctx context.Context) error {
		return grpc.SetHeader(ctx, metadata.Pairs(NoticeMetadata, "claimed; grace_until=2026-12-30T08:00:00Z"))
	})
	require.NoError(t, exportAll(s))
	require.NoError(t, exportAll(s))
	n, ok := s.Notice()
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 12, 30, 8, 0, 0, 0, time.UTC), n.GraceUntil.UTC())
	require.Equal(t, 1, logs.count("has been claimed"), logs.String())

	gw.answer(func(ctx context.Context) error {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "req_grpc"))
		return apierr.New(apierr.Unauthenticated, "the key has been revoked").With("reason", "revoked")
	})
	for range 2 {
		require.ErrorContains(t, exportAll(s), "the key has been revoked")
	}
	r, ok := s.LastRejection()
	require.True(t, ok)
	require.Equal(t, Rejection{
		Code: "unauthenticated", Reason: "revoked", Message: "the key has been revoked", GRPCCode: codes.Unauthenticated,
		RequestID: "req_grpc", Signal: r.Signal, At: r.At,
	}, r)
	require.Contains(t, []string{"traces", "metrics", "logs"}, r.Signal)
	require.Equal(t, 1, logs.count("the gateway refuses this key"), logs.String())

	gw.answer(func(context.Context) error {
		return apierr.New(apierr.OriginNotAllowed, "this origin may not use the key")
	})
	require.Error(t, exportAll(s))
	r, _ = s.LastRejection()
	require.Equal(t, "origin_not_allowed", r.Code)
	require.Equal(t, codes.PermissionDenied, r.GRPCCode)
	require.Equal(t, 2, logs.count("the gateway refuses this key"), logs.String())

	for _, a := range gw.received("authorization") {
		require.Equal(t, []string{"Bearer " + key}, a)
	}
	require.NotContains(t, logs.String(), key)
	gw.answer(nil) // so that the shutdown's last export passes
}

// The key replaces an authorization in OTEL_EXPORTER_OTLP_HEADERS; the variable's other
// headers are sent as OpenTelemetry reads them, over HTTP and gRPC.
func TestKeyOverridesExporterHeaders(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20other")
	key := generate(t, keyformat.Default(), "ingest")
	gw := newGateway(t)
	s := start(t, Options{APIKey: key, Endpoint: gw.URL, Dir: t.TempDir(), Logger: discard()})
	require.NoError(t, exportAll(s))
	require.NotEmpty(t, gw.received("Authorization"))
	for i, a := range gw.received("Authorization") {
		require.Equal(t, []string{"Bearer " + key}, a)
		require.Equal(t, []string{"acme"}, gw.received("X-Tenant")[i])
	}
	ggw := newGRPCGateway(t)
	s = start(t, Options{APIKey: key, Protocol: GRPC, Endpoint: "http://" + ggw.addr, Dir: t.TempDir(), Logger: discard()})
	require.NoError(t, exportAll(s))
	require.Len(t, ggw.received("authorization"), 3)
	for i, a := range ggw.received("authorization") {
		require.Equal(t, []string{"Bearer " + key}, a)
		require.Equal(t, []string{"acme"}, ggw.received("x-tenant")[i])
	}
}
