package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// testAuth stands in for the gateway's verification, which is tested on its own.
type testAuth struct{}

var (
	goodGrant  = grant.Grant{KeyID: "key_good", AccountID: "acc_1", ProjectID: "prj_1", Environment: "prd", KeyType: "ingest"}
	good2Grant = grant.Grant{KeyID: "key_good2", AccountID: "acc_1", ProjectID: "prj_1", Environment: "prd", KeyType: "ingest"}
	anonGrant  = grant.Grant{KeyID: "key_anon", KeyType: "anonymous", Anonymous: true}
	// claimedGrant is an anonymous key claimed into acc_1, in its grace.
	claimedGrant = grant.Grant{
		KeyID: "key_claimed", AccountID: "acc_1", ProjectID: "prj_1", Environment: "prd", KeyType: "anonymous",
		Notice: grant.ClaimNotice(time.Date(2026, 12, 30, 12, 0, 0, 0, time.UTC)),
	}
	// collectorGrant is a collector key's, bound to a project and a server.
	collectorGrant = grant.Grant{KeyID: "key_collector", AccountID: "acc_1", ProjectID: "prj_1", KeyType: "collector", ServerID: "srv_01jz0000000000000000000000"}
)

func (testAuth) Authorize(_ context.Context, req grant.Request) (grant.Grant, error) {
	switch req.Key {
	case "good":
		return goodGrant, nil
	case "good2":
		return good2Grant, nil
	case "anon":
		return anonGrant, nil
	case "claimed":
		return claimedGrant, nil
	case "claimed-elsewhere": // a claimed key used from an origin its project refuses
		return grant.Grant{Notice: claimedGrant.Notice}, apierr.New(apierr.OriginNotAllowed, "this origin may not use the key")
	case "collector":
		return collectorGrant, nil
	case "slow":
		return grant.Grant{}, &apierr.Error{Code: apierr.RateLimited, Message: "slow down", RetryAfter: 2 * time.Second}
	case "broken":
		return grant.Grant{}, errors.New("keys service: connection refused")
	case "foreign":
		// A good key sent from an origin its project does not allow.
		return grant.Grant{}, apierr.New(apierr.OriginNotAllowed, "this origin may not use the key")
	default:
		return grant.Grant{}, apierr.New(apierr.Unauthenticated, "the API key is not valid")
	}
}

// env is the ingest package wired to a real JetStream, served over real HTTP.
type env struct {
	ns  string
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg Config
	pub *Publisher
	h   http.Handler
	srv *httptest.Server
}

type envOpt func(*env)

func withMaxBody(n int64) envOpt { return func(e *env) { e.cfg.MaxBodyBytes = n } }

// withLogger replaces the test logger (fuzzing would pile every line up in memory).
func withLogger(l *zap.Logger) envOpt { return func(e *env) { e.cfg.Logger = l } }

// withErrors words refusals as a profile's gateway_errors say (Config.Errors).
func withErrors(g keyformat.GatewayErrors) envOpt {
	return func(e *env) { e.cfg.Errors = func() keyformat.GatewayErrors { return g } }
}

// withoutStreams leaves the streams uncreated, so every publish finds no stream.
func withoutStreams() envOpt { return func(e *env) { e.ns = "" } }

// newEnv connects to url (the shared NATS server when "") in a namespace of the test's own.
func newEnv(t testing.TB, url string, opts ...envOpt) *env {
	t.Helper()
	shared := url == ""
	if shared {
		url = testutil.NATSURL()
	}
	ns := "t" + testutil.Suffix()
	if shared {
		ns = testutil.Namespace(t)
	}
	e := &env{ns: ns, cfg: Config{Namespace: ns, PublishTimeout: 2 * time.Second, Logger: zaptest.NewLogger(t)}}
	for _, o := range opts {
		o(e)
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	if e.ns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, ensureStreams(ctx, js, ns, time.Hour, time.Hour))
	}
	e.ns, e.nc, e.js = ns, nc, js
	e.pub, err = NewPublisher(nc, e.cfg)
	require.NoError(t, err)
	// Behind the shared edge, as run.go serves it: request ids, limits, recovery.
	e.h = server.Edge(server.EdgeConfig{Logger: e.cfg.Logger, MaxBodyBytes: e.cfg.withDefaults().MaxBodyBytes, WriteError: ErrorWriter(e.cfg)},
		NewHTTPHandler(testAuth{}, e.pub, e.cfg))
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

// grpcConn serves RegisterGRPC at 127.0.0.1:0 on the server every service uses
// (server.NewGRPC, as the gateway does) and dials it.
func (e *env) grpcConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	g, err := server.NewGRPC(server.GRPCConfig{Name: "ingest-gateway", Addr: "127.0.0.1:0", Logger: e.cfg.Logger})
	require.NoError(t, err)
	RegisterGRPC(g.Server, testAuth{}, e.pub, e.cfg)
	lis, err := g.Listen()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path with headers ("" values are left out).
func (e *env) post(t testing.TB, path string, body io.Reader, headers map[string]string) response {
	t.Helper()
	return e.do(t, http.MethodPost, path, body, headers)
}

func (e *env) do(t testing.TB, method, path string, body io.Reader, headers map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, body: b}
}

type envelope struct {
	Error             string `json:"error"`
	Message           string `json:"message"`
	RequestID         string `json:"request_id"`
	DocumentationURL  string `json:"documentation_url"`
	RetryAfterSeconds int    `json:"retry_after_seconds"`
}

// requireError checks the status and the JSON error envelope (docs/rest.md, "Error
// envelope").
func requireError(t testing.TB, r response, status int, code apierr.Code) envelope {
	t.Helper()
	require.Equal(t, status, r.status, "body: %s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	var env envelope
	require.NoError(t, json.Unmarshal(r.body, &env), "body: %s", r.body)
	require.Equal(t, string(code), env.Error)
	require.NotEmpty(t, env.Message)
	require.NotEmpty(t, env.RequestID)
	require.Equal(t, r.header.Get(requestid.Header), env.RequestID)
	require.Equal(t, apierr.DocsBase+string(code), env.DocumentationURL)
	return env
}

// messages returns every message in a stream, in order.
func (e *env) messages(t testing.TB, stream string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []*jetstream.RawStreamMsg
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		out = append(out, m)
	}
	return out
}

// byRequestID returns the messages of a stream that hold the request id.
func (e *env) byRequestID(t testing.TB, stream, id string) []*jetstream.RawStreamMsg {
	t.Helper()
	var out []*jetstream.RawStreamMsg
	for _, m := range e.messages(t, stream) {
		if slices.Contains(m.Header.Values(HeaderRequestID), id) {
			out = append(out, m)
		}
	}
	return out
}

var testTraceID = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

const testTraceIDHex = "0102030405060708090a0b0c0d0e0f10"

func sampleTraces(spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range spans {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(testTraceID)
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i + 1)})
		sp.SetName("GET /cart")
		sp.SetKind(ptrace.SpanKindServer)
		sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000))
		sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_250_000_000))
		sp.Attributes().PutStr("http.route", "/cart")
		sp.Attributes().PutInt("http.status_code", 200)
	}
	return td
}

func sampleMetrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("requests")
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetIntValue(42)
	dp.SetTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000))
	return md
}

func sampleLogs(body string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.Body().SetStr(body)
	lr.SetTraceID(testTraceID)
	return ld
}

type testRequest interface {
	exportRequest
	MarshalJSON() ([]byte, error)
}

// sampleRequest is a non-empty export request of sig.
func sampleRequest(sig Signal) testRequest {
	switch sig {
	case Traces:
		return ptraceotlp.NewExportRequestFromTraces(sampleTraces(1))
	case Metrics:
		return pmetricotlp.NewExportRequestFromMetrics(sampleMetrics())
	default:
		return plogotlp.NewExportRequestFromLogs(sampleLogs("hello"))
	}
}

func encodeProto(t testing.TB, r exportRequest) []byte {
	t.Helper()
	b, err := r.MarshalProto()
	require.NoError(t, err)
	return b
}

func encodeJSON(t testing.TB, r interface{ MarshalJSON() ([]byte, error) }) []byte {
	t.Helper()
	b, err := r.MarshalJSON()
	require.NoError(t, err)
	return b
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func pathOf(sig Signal) string {
	switch sig {
	case Traces:
		return PathTraces
	case Metrics:
		return PathMetrics
	default:
		return PathLogs
	}
}

// ensureStreams creates or updates the ingest streams of StreamConfigs, as the gateway's
// stream keeper (natsx) does at start.
func ensureStreams(ctx context.Context, js jetstream.JetStream, ns string, retention, anonRetention time.Duration) error {
	streams, err := natsx.IngestStreamConfigs(ns, retention, anonRetention)
	if err != nil {
		return err
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return err
		}
	}
	return nil
}
