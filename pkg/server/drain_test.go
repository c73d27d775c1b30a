package server_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// revoker is a one-method gRPC service: Revoke waits until the test lets it go, then
// commits a key.revoked event for the key id it is given, as a real handler would.
type revoker struct {
	pool    *pgxpool.Pool
	ns      string
	notify  func()
	started chan struct{}
	release chan struct{}
}

const revokeMethod = "/test.Revoker/Revoke"

func (r *revoker) revoke(ctx context.Context, keyID string) error {
	r.started <- struct{}{}
	<-r.release
	ev := events.New("acc_test", "req_test")
	ev.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: keyID}}
	if err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error { return outbox.Add(ctx, tx, r.ns, ev) }); err != nil {
		return err
	}
	r.notify()
	return nil
}

var revokerDesc = grpc.ServiceDesc{
	ServiceName: "test.Revoker",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Revoke", Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		return in, srv.(*revoker).revoke(ctx, in.GetValue())
	}}},
}

// TestShutdownPublishesWhatInFlightCallsCommit: calls in flight when the stop comes (one
// over gRPC, one over HTTP that reaches gRPC in process only after the stop) finish, and
// the events they commit are in JetStream when Run returns. Before that, health says
// NOT_SERVING and /healthz 503 while the listeners still accept.
func TestShutdownPublishesWhatInFlightCallsCommit(t *testing.T) {
	ns := testutil.Namespace(t)
	pool := testutil.DB(t, "draintest", outbox.Migrations)
	nc, err := natsx.Connect(testutil.NATSURL(), "drain-test", zap.NewNop())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := natsx.EnsureEventsStream(context.Background(), js, ns)
	require.NoError(t, err)

	relay := outbox.NewRelay(pool, js, zap.NewNop())
	rv := &revoker{pool: pool, ns: ns, notify: relay.Notify, started: make(chan struct{}, 2), release: make(chan struct{})}
	g, err := server.NewGRPC(server.GRPCConfig{Name: "drain", Addr: "127.0.0.1:0"})
	require.NoError(t, err)
	g.Server.RegisterService(&revokerDesc, rv)
	// The HTTP call goes through the in-process connection, as the REST bridge does.
	httpStarted := make(chan struct{})
	viaHTTP := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(httpStarted)
		<-rv.release
		out := new(wrapperspb.StringValue)
		if err := g.LocalConn().Invoke(r.Context(), revokeMethod, wrapperspb.String("key_http"), out); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "revoked\n")
	})
	u := &server.Unit{
		Name: "drain", GRPC: g, Workers: []func(context.Context) error{relay.Run},
		HTTP: &server.HTTPListener{Addr: "127.0.0.1:0", Handler: viaHTTP},
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.RunConfig{
			Logger: zap.NewNop(), HTTPAddr: "127.0.0.1:0", Grace: 10 * time.Second, DrainDelay: time.Second,
			OnListening: func(a map[string]string) { addrs <- a },
		}, u)
	}()
	a := <-addrs
	conn, err := grpc.NewClient(a["drain grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	health := healthpb.NewHealthClient(conn)
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			return healthpb.HealthCheckResponse_UNKNOWN
		}
		return resp.GetStatus()
	}
	healthz := func() int {
		resp, err := http.Get("http://" + a["rest"] + "/healthz")
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return status() == healthpb.HealthCheckResponse_SERVING }, "SERVING")
	require.Equal(t, http.StatusOK, healthz())

	grpcErr := make(chan error, 1)
	go func() {
		grpcErr <- conn.Invoke(context.Background(), revokeMethod, wrapperspb.String("key_grpc"), new(wrapperspb.StringValue))
	}()
	<-rv.started
	httpStatus := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+a["drain http"]+"/", "text/plain", nil)
		if err != nil {
			httpStatus <- 0
			return
		}
		_ = resp.Body.Close()
		httpStatus <- resp.StatusCode
	}()
	// The HTTP call is in flight and has not reached gRPC yet: it will, after the stop.
	<-httpStarted

	cancel()
	testutil.Eventually(t, 5*time.Second, func() bool { return status() == healthpb.HealthCheckResponse_NOT_SERVING }, "NOT_SERVING first")
	testutil.Eventually(t, 5*time.Second, func() bool { return healthz() == http.StatusServiceUnavailable }, "/healthz 503 first")
	close(rv.release)
	require.NoError(t, <-grpcErr)
	require.NoError(t, <-done)
	require.Equal(t, http.StatusOK, <-httpStatus)

	// Both events were published before Run returned.
	info, err := stream.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(2), info.State.Msgs, "both revocations published before Run returned")
	var revoked []string
	for seq := uint64(1); seq <= 2; seq++ {
		msg, err := stream.GetMsg(context.Background(), seq)
		require.NoError(t, err)
		ev := &eventsv1.Event{}
		require.NoError(t, proto.Unmarshal(msg.Data, ev))
		revoked = append(revoked, ev.GetKeyRevoked().GetKeyId())
	}
	require.ElementsMatch(t, []string{"key_grpc", "key_http"}, revoked)
}
