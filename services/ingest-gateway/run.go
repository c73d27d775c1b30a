// Package gateway is the ingest gateway: it accepts OTLP over HTTP and gRPC and plain JSON
// logs, verifies each request's key against a local cache kept true by the event stream,
// and publishes accepted data to JetStream, answering only after JetStream has it.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/eventsub"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/ingest"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/verifier"
)

// Config is the gateway's configuration. ConfigFromEnv reads it from the environment:
// each field's tags name its variable and default.
type Config struct {
	// Common are the settings every service shares: namespace, NATS, shutdown grace,
	// logging, and the operator token, which is the gateway's credential at the keys
	// service.
	settings.Common
	// KeysPeer is the keys service (VerifyKey, key types).
	settings.KeysPeer
	// ID names this gateway in heartbeats and revocation receipts; hostname and a random
	// suffix when unset.
	ID string `env:"GATEWAY_ID"`
	// HTTPAddr serves OTLP/HTTP, /ingest/logs, /healthz and /metrics.
	HTTPAddr string `env:"GATEWAY_HTTP_ADDR" envDefault:"127.0.0.1:4318"`
	// GRPCAddr serves OTLP/gRPC.
	GRPCAddr string `env:"GATEWAY_GRPC_ADDR" envDefault:"127.0.0.1:4317"`
	// MaxStaleness bounds how long any cached answer is used, even if every event is lost.
	MaxStaleness time.Duration `env:"GATEWAY_MAX_STALENESS" envDefault:"30s"`
	// NegativeTTL is how long "no such key" is remembered.
	NegativeTTL time.Duration `env:"GATEWAY_NEGATIVE_TTL" envDefault:"2s"`
	// MaxBodyBytes bounds a request body, compressed or not; at least 1024.
	MaxBodyBytes int64 `env:"GATEWAY_MAX_BODY_BYTES" envDefault:"4194304"`
	// PublishTimeout bounds the wait for JetStream's ack.
	PublishTimeout time.Duration `env:"GATEWAY_PUBLISH_TIMEOUT" envDefault:"2s"`
	// MergeClientRequestIDs merges requests that carry their client's X-Request-Id like
	// any other, giving up JetStream's deduplication of their retries; for deployments
	// behind a proxy that stamps every request with an id (see ingest.Config).
	MergeClientRequestIDs bool `env:"GATEWAY_MERGE_CLIENT_REQUEST_IDS" envDefault:"false"`
	// Retention is the ingest stream's MaxAge.
	Retention time.Duration `env:"GATEWAY_RETENTION" envDefault:"72h"`
	// AnonRetention is the anonymous ingest stream's MaxAge when the profile's anonymous
	// key type names no data_ttl, and until the gateway has loaded the key types; the
	// type's data_ttl wins (ingest.AnonStream).
	AnonRetention time.Duration `env:"GATEWAY_ANON_RETENTION" envDefault:"48h"`
	// FailedAuthPerSecond and FailedAuthBurst limit failed authentications per client IP.
	FailedAuthPerSecond float64 `env:"GATEWAY_FAILED_AUTH_PER_SECOND" envDefault:"10"`
	FailedAuthBurst     int     `env:"GATEWAY_FAILED_AUTH_BURST" envDefault:"50"`
}

// ConfigFromEnv reads the configuration, reporting every value that does not parse; New
// validates it.
func ConfigFromEnv() (Config, error) {
	var c Config
	err := settings.Parse(&c)
	return c, err
}

// Validate reports every bad setting, at once.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.KeysPeer.Validate()}
	if c.MaxStaleness <= 0 || c.NegativeTTL <= 0 || c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("GATEWAY_MAX_STALENESS, GATEWAY_NEGATIVE_TTL and GATEWAY_PUBLISH_TIMEOUT must be positive"))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, errors.New("GATEWAY_MAX_BODY_BYTES must be at least 1024"))
	}
	if !(c.FailedAuthPerSecond > 0) || c.FailedAuthBurst < 1 {
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
	files, err := cfg.TLS.Load(log)
	if err != nil {
		return nil, err
	}
	u := &server.Unit{Name: "ingest-gateway", TLS: files}
	defer func() {
		if err != nil {
			u.Close()
		}
	}()
	cache := keycache.New(cfg.MaxStaleness, cfg.NegativeTTL)
	var subRef atomic.Pointer[eventsub.Subscriber] // set below; the handler may run first
	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-gateway-"+cfg.ID, log, files.NATSOption(cfg.NATSURL),
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
	js = natsx.Replicated(js, int(cfg.StreamReplicas))
	streams, err := natsx.IngestStreamConfigs(cfg.Namespace, cfg.Retention, cfg.AnonRetention)
	if err != nil {
		return nil, err
	}
	events := natsx.EventsStreamResource(js, cfg.Namespace)
	events.Recreated = func() {
		if sub := subRef.Load(); sub != nil {
			sub.Lost("events stream recreated")
		}
	}
	anon := ingest.NewAnonStream(js, streams[1])
	keeper := natsx.NewKeeper(js, log, events, natsx.StreamConfigResource(js, streams[0]), natsx.StreamResource(js, anon.Name(), anon.Ensure))
	if err := keeper.EnsureWithin(ctx, cfg.StreamWait); err != nil {
		return nil, err
	}
	sub := eventsub.New(nc, js, cfg.Namespace, cfg.ID, cache, keeper.Ensure, log)
	subRef.Store(sub)

	keysConn, err := server.DialPeer(cfg.KeysAddr, files)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, func() { _ = keysConn.Close() })
	perKey, failures := ratelimit.New(nil), ratelimit.New(nil)
	v := verifier.New(keysv1.NewKeysServiceClient(keysConn), cfg.OperatorToken, cache, perKey, failures, verifier.Config{
		FailedAuthPerIP: ratelimit.Limit{PerSecond: cfg.FailedAuthPerSecond, Burst: cfg.FailedAuthBurst},
	})
	v.BatchMisses(keysv1.NewInternalServiceClient(keysConn))

	icfg := ingest.Config{
		Namespace: cfg.Namespace, MaxBodyBytes: cfg.MaxBodyBytes, PublishTimeout: cfg.PublishTimeout,
		MergeClientRequestIDs: cfg.MergeClientRequestIDs, Logger: log, Errors: v.GatewayErrors,
	}
	pub, err := ingest.NewPublisher(nc, icfg)
	if err != nil {
		return nil, err
	}
	pub.StreamLost = keeper.Notice
	g, err := server.NewGRPC(server.GRPCConfig{
		Name: "ingest-gateway", Addr: cfg.GRPCAddr, Logger: log, MaxRecvBytes: int(cfg.MaxBodyBytes),
		// Customers' apps send OTLP/gRPC here: TLS, but no client certificate asked.
		TLS: files, Public: true,
	})
	if err != nil {
		return nil, err
	}
	ingest.RegisterGRPC(g.Server, v, pub, icfg)

	ready := func() bool { return v.Ready() && sub.Subscribed() && keeper.Ready() }
	edge := server.EdgeConfig{Name: "ingest", Logger: log, Ready: ready, MaxBodyBytes: cfg.MaxBodyBytes, WriteError: ingest.ErrorWriter(icfg)}

	u.GRPC = g
	u.HTTP = &server.HTTPListener{Addr: cfg.HTTPAddr, Handler: server.Edge(edge, ingest.CORS(ingest.NewHTTPHandler(v, pub, icfg)))}
	u.Ready = ready
	u.Workers = []func(context.Context) error{
		keeper.Run,
		sub.Run,
		func(ctx context.Context) error { return loadTypes(ctx, v, anon, log) },
		func(ctx context.Context) error { perKey.Run(ctx, time.Minute); return nil },
		func(ctx context.Context) error { failures.Run(ctx, time.Minute); return nil },
	}
	return &Gateway{Unit: u, Cache: cache, Verifier: v, Subscriber: sub}, nil
}

// loadTypes fetches the key types from the keys service, retrying until it answers (the
// gateway may start first), then refreshes them every minute; the anonymous stream follows
// the anonymous type's data_ttl.
func loadTypes(ctx context.Context, v *verifier.Verifier, anon *ingest.AnonStream, log *zap.Logger) error {
	wait := 100 * time.Millisecond
	for {
		err := v.LoadTypes(ctx)
		if err == nil {
			err = followDataTTL(ctx, v, anon)
		}
		switch {
		case err == nil:
			wait = time.Minute
		case ctx.Err() != nil:
			return nil
		default:
			log.Warn("cannot load or apply the key types of the keys service; retrying", zap.Error(err))
			wait = min(2*wait, 5*time.Second)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// followDataTTL keeps the anonymous stream's MaxAge at the anonymous key type's data_ttl.
func followDataTTL(ctx context.Context, v *verifier.Verifier, anon *ingest.AnonStream) error {
	t, ok := v.Types().Anonymous()
	if !ok {
		return nil
	}
	if err := anon.Retain(ctx, t.DataTTL.Duration); err != nil {
		return fmt.Errorf("setting the anonymous stream's MaxAge to the anonymous key type's data_ttl (%s): %w", t.DataTTL, err)
	}
	return nil
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
