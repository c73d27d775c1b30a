// Package gateway is the ingest gateway: it accepts OTLP over HTTP and gRPC and plain JSON
// logs, verifies each request's key against a local cache kept true by the event stream,
// and publishes accepted data to JetStream, answering only after JetStream has it.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/envconfig"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/eventsub"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/ingest"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/verifier"
)

// Config is the gateway's configuration; ConfigFromEnv reads it.
type Config struct {
	// ID names this gateway in heartbeats and revocation receipts (GATEWAY_ID; hostname and
	// a random suffix when unset).
	ID string
	// HTTPAddr serves OTLP/HTTP, /ingest/logs, /healthz and /metrics (GATEWAY_HTTP_ADDR).
	HTTPAddr string
	// GRPCAddr serves OTLP/gRPC (GATEWAY_GRPC_ADDR).
	GRPCAddr string
	// KeysAddr is the keys service's gRPC address (KEYS_GRPC_ADDR).
	KeysAddr string
	// NATSURL is the NATS server (NATS_URL).
	NATSURL string
	// Namespace prefixes subjects and streams (LATCHKEY_NAMESPACE).
	Namespace string
	// ServiceToken authenticates the gateway to the keys service: the operator token
	// (LATCHKEY_OPERATOR_TOKEN).
	ServiceToken string
	// MaxStaleness bounds how long any cached answer is used, even if every event is lost
	// (GATEWAY_MAX_STALENESS).
	MaxStaleness time.Duration
	// NegativeTTL is how long "no such key" is remembered (GATEWAY_NEGATIVE_TTL).
	NegativeTTL time.Duration
	// MaxBodyBytes bounds a request body, compressed or not (GATEWAY_MAX_BODY_BYTES).
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream's ack (GATEWAY_PUBLISH_TIMEOUT).
	PublishTimeout time.Duration
	// MergeClientRequestIDs merges requests that carry their client's X-Request-Id like
	// any other, giving up JetStream's deduplication of their retries; for deployments
	// behind a proxy that stamps every request with an id
	// (GATEWAY_MERGE_CLIENT_REQUEST_IDS; see ingest.Config).
	MergeClientRequestIDs bool
	// Retention and AnonRetention are the ingest streams' MaxAge (GATEWAY_RETENTION,
	// GATEWAY_ANON_RETENTION).
	Retention, AnonRetention time.Duration
	// FailedAuthPerSecond and FailedAuthBurst limit failed authentications per client IP
	// (GATEWAY_FAILED_AUTH_PER_SECOND, GATEWAY_FAILED_AUTH_BURST).
	FailedAuthPerSecond float64
	FailedAuthBurst     int
	// ShutdownGrace is how long in-flight requests get on shutdown (LATCHKEY_SHUTDOWN_GRACE).
	ShutdownGrace time.Duration
}

// ConfigFromEnv reads the configuration; New validates it.
func ConfigFromEnv() (Config, error) {
	var r envconfig.Reader
	c := Config{
		ID:                    r.String("GATEWAY_ID", ""),
		HTTPAddr:              r.String("GATEWAY_HTTP_ADDR", "127.0.0.1:4318"),
		GRPCAddr:              r.String("GATEWAY_GRPC_ADDR", "127.0.0.1:4317"),
		KeysAddr:              r.String("KEYS_GRPC_ADDR", "127.0.0.1:8082"),
		NATSURL:               r.String("NATS_URL", "nats://127.0.0.1:4222"),
		Namespace:             r.String("LATCHKEY_NAMESPACE", natsx.DefaultNamespace),
		ServiceToken:          r.String("LATCHKEY_OPERATOR_TOKEN", ""),
		MaxStaleness:          r.Duration("GATEWAY_MAX_STALENESS", 30*time.Second),
		NegativeTTL:           r.Duration("GATEWAY_NEGATIVE_TTL", 2*time.Second),
		MaxBodyBytes:          int64(r.Int("GATEWAY_MAX_BODY_BYTES", 4<<20)),
		PublishTimeout:        r.Duration("GATEWAY_PUBLISH_TIMEOUT", 2*time.Second),
		MergeClientRequestIDs: r.Bool("GATEWAY_MERGE_CLIENT_REQUEST_IDS", false),
		Retention:             r.Duration("GATEWAY_RETENTION", 72*time.Hour),
		AnonRetention:         r.Duration("GATEWAY_ANON_RETENTION", 48*time.Hour),
		FailedAuthPerSecond:   float64(r.Int("GATEWAY_FAILED_AUTH_PER_SECOND", 10)),
		FailedAuthBurst:       r.Int("GATEWAY_FAILED_AUTH_BURST", 50),
		ShutdownGrace:         r.Duration("LATCHKEY_SHUTDOWN_GRACE", 10*time.Second),
	}
	return c, r.Err()
}

// Validate reports every bad setting.
func (c Config) Validate() error {
	var errs []error
	if err := auth.CheckOperatorToken(c.ServiceToken); err != nil {
		errs = append(errs, err)
	}
	if c.KeysAddr == "" || c.NATSURL == "" || c.Namespace == "" {
		errs = append(errs, errors.New("KEYS_GRPC_ADDR, NATS_URL and LATCHKEY_NAMESPACE must not be empty"))
	}
	if c.MaxStaleness <= 0 || c.NegativeTTL <= 0 || c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("GATEWAY_MAX_STALENESS, GATEWAY_NEGATIVE_TTL and GATEWAY_PUBLISH_TIMEOUT must be positive"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("GATEWAY_MAX_BODY_BYTES must be at least 1024"))
	}
	if c.FailedAuthPerSecond <= 0 || c.FailedAuthBurst < 1 {
		errs = append(errs, errors.New("GATEWAY_FAILED_AUTH_PER_SECOND and GATEWAY_FAILED_AUTH_BURST must be positive"))
	}
	return errors.Join(errs...)
}

// Gateway is a built gateway: its unit to serve, and handles tests and benchmarks use.
type Gateway struct {
	Unit       *server.Unit
	Cache      *keycache.Cache
	Verifier   *verifier.Verifier
	Subscriber *eventsub.Subscriber
}

// New opens the gateway's connections and builds it; it listens on nothing (server.Run does).
func New(ctx context.Context, cfg Config, log *zap.Logger) (gw *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = defaultID()
	}
	log = log.With(zap.String("service", "ingest-gateway"), zap.String("gateway_id", cfg.ID))
	u := &server.Unit{Name: "ingest-gateway"}
	defer func() {
		if err != nil {
			u.Close()
		}
	}()
	cache := keycache.New(cfg.MaxStaleness, cfg.NegativeTTL)
	var subRef atomic.Pointer[eventsub.Subscriber] // set below; the handler may run first
	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-gateway-"+cfg.ID, log,
		// No reconnect buffer: a publish while disconnected fails at once (503) instead
		// of being flushed after a reconnect, long after its client was told to retry.
		nats.ReconnectBufSize(-1),
		// Cached answers are not trusted across a disconnect: distrusted from the moment
		// it is noticed, and in any case before a new connection carries a publish;
		// trusted again once the subscriber follows the stream.
		natsx.OnConnectionLost(cache.Distrust),
		nats.ReconnectHandler(func(*nats.Conn) {
			if sub := subRef.Load(); sub != nil {
				sub.Reconnected()
			}
		}))
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	streams, err := ingest.StreamConfigs(cfg.Namespace, cfg.Retention, cfg.AnonRetention)
	if err != nil {
		return nil, err
	}
	events := natsx.EventsStreamResource(js, cfg.Namespace)
	events.Recreated = func() {
		if sub := subRef.Load(); sub != nil {
			sub.Lost("events stream recreated")
		}
	}
	keeper := natsx.NewKeeper(js, log, events, natsx.StreamConfigResource(js, streams[0]), natsx.StreamConfigResource(js, streams[1]))
	if err := keeper.Ensure(ctx); err != nil {
		return nil, err
	}
	sub := eventsub.New(nc, js, cfg.Namespace, cfg.ID, cache, keeper.Ensure, log)
	subRef.Store(sub)

	keysConn, err := grpc.NewClient(cfg.KeysAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, func() { _ = keysConn.Close() })
	perKey, failures := ratelimit.New(nil), ratelimit.New(nil)
	v := verifier.New(keysv1.NewKeysServiceClient(keysConn), cfg.ServiceToken, cache, perKey, failures, verifier.Config{
		FailedAuthPerIP: ratelimit.Limit{PerSecond: cfg.FailedAuthPerSecond, Burst: cfg.FailedAuthBurst},
	})

	icfg := ingest.Config{
		Namespace: cfg.Namespace, MaxBodyBytes: cfg.MaxBodyBytes, PublishTimeout: cfg.PublishTimeout,
		MergeClientRequestIDs: cfg.MergeClientRequestIDs, Logger: log,
	}
	pub, err := ingest.NewPublisher(nc, icfg)
	if err != nil {
		return nil, err
	}
	pub.StreamLost = keeper.Notice
	g, err := server.NewGRPC(server.GRPCConfig{Name: "ingest-gateway", Addr: cfg.GRPCAddr, Logger: log, MaxRecvBytes: int(cfg.MaxBodyBytes)})
	if err != nil {
		return nil, err
	}
	ingest.RegisterGRPC(g.Server, v, pub, icfg)

	ready := func() bool { return v.Ready() && sub.Subscribed() && keeper.Ready() }
	edge := server.EdgeConfig{Name: "ingest", Logger: log, Ready: ready, MaxBodyBytes: cfg.MaxBodyBytes}

	u.GRPC = g
	u.HTTP = &server.HTTPListener{Addr: cfg.HTTPAddr, Handler: server.Edge(edge, ingest.CORS(ingest.NewHTTPHandler(v, pub, icfg)))}
	u.Ready = ready
	u.Workers = []func(context.Context) error{
		keeper.Run,
		sub.Run,
		func(ctx context.Context) error { return loadTypes(ctx, v, log) },
		func(ctx context.Context) error { perKey.Run(ctx, time.Minute); return nil },
		func(ctx context.Context) error { failures.Run(ctx, time.Minute); return nil },
	}
	return &Gateway{Unit: u, Cache: cache, Verifier: v, Subscriber: sub}, nil
}

// loadTypes fetches the key types from the keys service, retrying until it answers (the
// gateway may start first), then refreshes them every minute.
func loadTypes(ctx context.Context, v *verifier.Verifier, log *zap.Logger) error {
	wait := 100 * time.Millisecond
	for {
		err := v.LoadTypes(ctx)
		switch {
		case err == nil:
			wait = time.Minute
		case ctx.Err() != nil:
			return nil
		default:
			log.Warn("cannot load key types from the keys service; retrying", zap.Error(err))
			wait = min(2*wait, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func defaultID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Run serves one gateway until ctx ends.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	gw, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.RunConfig{Logger: log, Grace: cfg.ShutdownGrace}, gw.Unit)
}
