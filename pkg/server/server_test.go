package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/requestid"
)

// probeServer is a tiny gRPC service for exercising the interceptor chain.
type probeServer interface {
	Boom(context.Context, *emptypb.Empty) (*emptypb.Empty, error)
	Who(context.Context, *emptypb.Empty) (*emptypb.Empty, error)
}

type probe struct{}

func (probe) Boom(context.Context, *emptypb.Empty) (*emptypb.Empty, error) { panic("boom") }

func (probe) Who(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	if _, err := auth.RequireUser(ctx); err != nil {
		return nil, err
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-seen-request-id", requestid.From(ctx)))
	return &emptypb.Empty{}, nil
}

func unary(name string, call func(probeServer, context.Context, *emptypb.Empty) (*emptypb.Empty, error)) grpc.MethodDesc {
	return grpc.MethodDesc{MethodName: name, Handler: func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Probe/" + name}
		return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return call(srv.(probeServer), ctx, req.(*emptypb.Empty))
		})
	}}
}

var probeDesc = grpc.ServiceDesc{
	ServiceName: "test.Probe",
	HandlerType: (*probeServer)(nil),
	Methods: []grpc.MethodDesc{
		unary("Boom", probeServer.Boom),
		unary("Who", probeServer.Who),
	},
}

func startProbe(t *testing.T) *grpc.ClientConn {
	t.Helper()
	g, err := NewGRPC(GRPCConfig{Name: "probe", Logger: zap.NewNop(), Authenticate: func(_ context.Context, token string) (*auth.Principal, error) {
		if token == "good" {
			return &auth.Principal{Kind: auth.KindUser, AccountID: "acc_1", UserID: "usr_1"}, nil
		}
		return nil, apierr.New(apierr.AccountSuspended, "suspended")
	}})
	require.NoError(t, err)
	g.Server.RegisterService(&probeDesc, probe{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, nil, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return g.LocalConn()
}

func TestPanicBecomesInternalAndServerLives(t *testing.T) {
	conn := startProbe(t)
	err := conn.Invoke(context.Background(), "/test.Probe/Boom", &emptypb.Empty{}, &emptypb.Empty{})
	e := apierr.FromError(err)
	require.Equal(t, apierr.Internal, e.Code)
	require.Equal(t, "internal error", e.Message)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer good")
	require.NoError(t, conn.Invoke(ctx, "/test.Probe/Who", &emptypb.Empty{}, &emptypb.Empty{}))
}

func TestRefusedCredentialReachesHandlersThatNeedOne(t *testing.T) {
	conn := startProbe(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer bad")
	err := conn.Invoke(ctx, "/test.Probe/Who", &emptypb.Empty{}, &emptypb.Empty{})
	require.Equal(t, apierr.AccountSuspended, apierr.FromError(err).Code, "the authenticator's reason, not a generic 401")
	err = conn.Invoke(context.Background(), "/test.Probe/Who", &emptypb.Empty{}, &emptypb.Empty{})
	require.Equal(t, apierr.Unauthenticated, apierr.FromError(err).Code)
}

func TestRequestIDIsKeptOrReplaced(t *testing.T) {
	conn := startProbe(t)
	call := func(sent string) (seen, echoed string) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer good", requestid.MetadataKey, sent)
		var hdr metadata.MD
		require.NoError(t, conn.Invoke(ctx, "/test.Probe/Who", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Header(&hdr)))
		return hdr.Get("x-seen-request-id")[0], hdr.Get(requestid.MetadataKey)[0]
	}
	seen, echoed := call("client-chosen-42")
	require.Equal(t, "client-chosen-42", seen)
	require.Equal(t, seen, echoed)
	seen, _ = call("bad id; with spaces & <html>")
	require.True(t, strings.HasPrefix(seen, "req_"), seen)
}

func envelope(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	for _, k := range []string{"error", "message", "request_id", "documentation_url"} {
		require.NotEmpty(t, body[k], "%s missing in %s", k, rec.Body.String())
	}
	require.Equal(t, body["request_id"], rec.Header().Get(requestid.Header))
	return body
}

func TestHTTPEdges(t *testing.T) {
	ready := false
	h, err := NewHTTPHandler(context.Background(), HTTPConfig{Ready: func() bool { return ready }, MaxBodyBytes: 16})
	require.NoError(t, err)
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}

	rec := serve(httptest.NewRequest("GET", "/healthz", nil))
	require.Equal(t, 503, rec.Code)
	ready = true
	require.Equal(t, 200, serve(httptest.NewRequest("GET", "/healthz", nil)).Code)

	rec = serve(httptest.NewRequest("GET", "/v1/nowhere", nil))
	require.Equal(t, 404, rec.Code)
	require.Equal(t, "not_found", envelope(t, rec)["error"])

	req := httptest.NewRequest("POST", "/v1/anything", strings.NewReader(strings.Repeat("x", 17)))
	req.Header.Set(requestid.Header, "mine-1")
	rec = serve(req)
	require.Equal(t, 413, rec.Code)
	body := envelope(t, rec)
	require.Equal(t, "payload_too_large", body["error"])
	require.Equal(t, "mine-1", body["request_id"])

	rec = serve(httptest.NewRequest("GET", "/openapi.json", nil))
	require.Equal(t, 200, rec.Code)
	doc, _ := io.ReadAll(rec.Body)
	require.Contains(t, string(doc), "/v1/keys")
}

func TestRetryAfterInEnvelope(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil).WithContext(requestid.With(context.Background(), "req_x", false))
	WriteError(rec, req, &apierr.Error{Code: apierr.RateLimited, Message: "slow down", Metadata: map[string]string{"tier": "ip"}, RetryAfter: 2500 * time.Millisecond})
	require.Equal(t, 429, rec.Code)
	require.Equal(t, "3", rec.Header().Get("Retry-After"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, "ip", body["tier"])
	require.InDelta(t, 3, body["retry_after_seconds"], 0)
}
