// Package server is the bootstrap every Latchkey service uses: a gRPC server with the
// interceptor chain (request id, logging, panic recovery, error mapping, authentication),
// gRPC health and reflection, the grpc-gateway REST bridge dispatched in process through
// that same chain, /healthz, /metrics and graceful shutdown.
package server

import (
	"context"
	"errors"
	"net"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
)

// Authenticator turns a bearer token into a principal, or returns an apierr for a bad one.
type Authenticator func(ctx context.Context, token string) (*auth.Principal, error)

// GRPCConfig configures a service's gRPC server.
type GRPCConfig struct {
	// Name is the service name, used in logs and health.
	Name string
	// Addr is where the gRPC server listens, e.g. 127.0.0.1:9081; "" serves in process only.
	Addr string
	// Logger receives one line per call; it never receives a secret.
	Logger *zap.Logger
	// Authenticate resolves bearer tokens. Calls without a valid one reach handlers
	// unauthenticated and handlers decide (auth.Require...), so public RPCs need no list.
	Authenticate Authenticator
	// MaxRecvBytes bounds one request message; 4 MiB when zero.
	MaxRecvBytes int
	// Conn bounds connections: how many, handshake and idle timeouts, keepalive.
	Conn ConnLimits
	// Interceptors run innermost, after authentication, so they see the caller
	// (auth.From): limits, idempotency.
	Interceptors []grpc.UnaryServerInterceptor
	// OnCall, if set, is told about every finished unary call, after it is logged (the
	// audit trail hooks in here). It runs on the call's goroutine; keep it quick.
	OnCall func(context.Context, Call)
	// TLS, if set, is what the network listener serves (the in-process connection of the
	// REST bridge stays plaintext: it never leaves the process). It demands client
	// certificates when it has a CA, unless Public.
	TLS *tlsfiles.Files
	// Public says that the listener serves clients outside the deployment (the ingest
	// gateway's OTLP/gRPC), which have no client certificate to present.
	Public bool
}

// GRPC is a configured gRPC server plus an in-process connection to it for the REST bridge.
type GRPC struct {
	cfg    GRPCConfig
	Server *grpc.Server
	Health *health.Server
	local  *bufconn.Listener
	conn   *grpc.ClientConn
}

// NewGRPC builds the server and its interceptor chain. Register services on g.Server, then Serve.
func NewGRPC(cfg GRPCConfig) (*GRPC, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxRecvBytes == 0 {
		cfg.MaxRecvBytes = 4 << 20
	}
	cfg.Conn = cfg.Conn.withDefaults()
	codec := newRequestCodec()
	i := &interceptors{name: cfg.Name, log: cfg.Logger, authenticate: cfg.Authenticate, onCall: cfg.OnCall, codec: codec}
	s := grpc.NewServer(append(cfg.Conn.serverOptions(),
		codec.serverOption(),
		grpc.MaxRecvMsgSize(cfg.MaxRecvBytes),
		// Outermost first: the request id exists before anything logs; recovery sits inside
		// error mapping so a panic becomes a clean Internal status.
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{
			i.requestID, i.logging, i.errors, i.rejectMalformed, i.recovery, checkText, i.authentication,
		}, cfg.Interceptors...)...),
		grpc.ChainStreamInterceptor(i.streamRequestID, i.streamRecovery),
	)...)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	reflection.Register(s)

	local := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///"+cfg.Name,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return local.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(cfg.MaxRecvBytes)),
		grpc.WithChainUnaryInterceptor(checkTextOut),
	)
	if err != nil {
		return nil, err
	}
	return &GRPC{cfg: cfg, Server: s, Health: hs, local: local, conn: conn}, nil
}

// OnCall is the configured call hook, or nil.
func (g *GRPC) OnCall() func(context.Context, Call) { return g.cfg.OnCall }

// LocalConn is an in-process connection to this server: calls through it run the whole
// interceptor chain, exactly as calls from the network do.
func (g *GRPC) LocalConn() *grpc.ClientConn { return g.conn }

// Listen opens the network listener, so a caller learns the address (port 0) before Serve;
// it serves TLS when GRPCConfig.TLS is set.
func (g *GRPC) Listen() (net.Listener, error) {
	if g.cfg.Addr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return nil, err
	}
	// The listener rather than grpc.Creds: those would apply to the in-process
	// connection too.
	return g.cfg.TLS.Listener(lis, g.cfg.Public), nil
}

// Serve serves on lis (may be nil; at most Conn.MaxConns connections at once) and in
// process until ctx ends, then drains: health goes NOT_SERVING, in-flight calls get grace
// to finish, and the rest are cut.
func (g *GRPC) Serve(ctx context.Context, lis net.Listener, grace time.Duration) error {
	errc := make(chan error, 2)
	go func() { errc <- g.Server.Serve(g.local) }()
	if lis != nil {
		lis = limitConns(lis, g.cfg.Conn.MaxConns, g.cfg.Name)
		go func() { errc <- g.Server.Serve(lis) }()
	}
	g.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			g.Server.Stop()
			return err
		}
	}
	g.Health.Shutdown()
	stopped := make(chan struct{})
	go func() { g.Server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(grace):
		g.cfg.Logger.Warn("grace period over; cutting remaining calls", zap.Duration("grace", grace))
		g.Server.Stop()
	}
	_ = g.conn.Close()
	return nil
}
