// Package audit is the audit service: it stores the audit events every service hands to
// JetStream, once each, append-only (enforced by Postgres), in a hash chain per account;
// lists them; verifies the chains; and deletes events past their plan's retention. New
// builds it as a server.Unit, so it runs alone (Run) or beside other services in one
// process.
package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/authclient"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/audit/internal/api"
	"github.com/latchkey/latchkey/services/audit/internal/consumer"
	"github.com/latchkey/latchkey/services/audit/internal/retention"
	"github.com/latchkey/latchkey/services/audit/internal/store"
	"github.com/latchkey/latchkey/services/audit/migrations"
)

// Name is the unit's name in logs, health and listener addresses.
const Name = "audit"

// Schema is the Postgres schema the service owns.
const Schema = "audit"

// MinRetention is the shortest retention period allowed: audit.apply_retention refuses to
// delete events less than a day old, whoever asks.
const MinRetention = 24 * time.Hour

// Config configures the audit service. ConfigFromEnv reads it from the environment: each
// field's tags name its variable and default.
type Config struct {
	// Common are the settings every service shares: namespace, operator token, NATS,
	// shutdown grace, logging. The operator token authenticates Append and the service's
	// own calls to accounts and keys; it also keys the MAC of listing cursors, so changing
	// it invalidates cursors in flight.
	settings.Common
	// Postgres is the database; the service uses schema "audit" in it. Migrations run as
	// this user, which must be able to create the NOLOGIN role latchkey_audit_writer (or
	// find it made by a DBA) and SET ROLE to it; the service's own connections then run
	// as that role.
	settings.Postgres
	// AccountsPeer is where sessions are authenticated and plans looked up.
	settings.AccountsPeer
	// KeysPeer is where account keys are verified.
	settings.KeysPeer
	// GRPCAddr is where the gRPC server listens; "" serves in process only.
	GRPCAddr string `env:"AUDIT_GRPC_ADDR" envDefault:"127.0.0.1:8083"`
	// HTTPAddr is the REST, /healthz and /metrics listener when the service runs alone.
	// New ignores it: an all-in-one runner serves the unit's gateway on its own listener.
	HTTPAddr string `env:"AUDIT_HTTP_ADDR" envDefault:"127.0.0.1:8093"`
	// RetentionInterval is how often retention runs.
	RetentionInterval time.Duration `env:"AUDIT_RETENTION_INTERVAL" envDefault:"1h"`
	// RetentionFree is how long events are kept on the free plan, for unknown accounts and
	// for events with no account; at least MinRetention.
	RetentionFree time.Duration `env:"AUDIT_RETENTION_FREE" envDefault:"720h"`
	// RetentionPro is how long events are kept on the pro plan; at least MinRetention.
	RetentionPro time.Duration `env:"AUDIT_RETENTION_PRO" envDefault:"8760h"`
}

// ConfigFromEnv reads the configuration from the environment. It reports every value
// that does not parse; Validate (called by New) checks the rest, so `audit migrate` needs
// only DATABASE_URL.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	err := settings.Parse(&cfg)
	return cfg, err
}

// Validate reports every setting that cannot work, at once.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Postgres.Validate(), c.AccountsPeer.Validate(), c.KeysPeer.Validate()}
	if c.RetentionInterval <= 0 {
		errs = append(errs, errors.New("AUDIT_RETENTION_INTERVAL must be positive"))
	}
	if c.RetentionFree < MinRetention || c.RetentionPro < MinRetention {
		errs = append(errs, fmt.Errorf("AUDIT_RETENTION_FREE and AUDIT_RETENTION_PRO must be at least %s", MinRetention))
	}
	return errors.Join(errs...)
}

// Migrate applies the audit schema's pending migrations, as the connecting user, and
// returns their names.
func Migrate(ctx context.Context, cfg Config) ([]string, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, Schema, 2)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	return postgres.Migrate(ctx, pool, Schema, migrations.FS)
}

// New validates cfg, migrates Postgres (as the connecting user), opens the service's pool
// (as latchkey_audit_writer), connects NATS, ensures the audit stream and its durable
// consumer, and builds the service as a unit. It listens on nothing: server.Run does. On
// error everything opened so far is closed.
func New(ctx context.Context, cfg Config, log *zap.Logger) (_ *server.Unit, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	log = log.With(zap.String("service", Name))
	u := &server.Unit{Name: Name}
	defer func() {
		if err != nil {
			u.Close()
		}
	}()

	if applied, err := Migrate(ctx, cfg); err != nil {
		return nil, err
	} else if len(applied) > 0 {
		log.Info("migrated", zap.Strings("versions", applied))
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, Schema, 0)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, pool.Close)
	st := store.New(pool)

	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-"+Name, log)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := natsx.EnsureAuditStream(ctx, js, cfg.Namespace); err != nil {
		return nil, fmt.Errorf("audit stream: %w", err)
	}
	cons, err := consumer.Ensure(ctx, js, cfg.Namespace, st.Append, log.Named("consumer"))
	if err != nil {
		return nil, fmt.Errorf("audit consumer: %w", err)
	}

	// NewClient does not connect until the first call, so accounts and keys may start later.
	accConn, err := grpc.NewClient(cfg.AccountsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("accounts client for %q: %w", cfg.AccountsAddr, err)
	}
	u.Closers = append(u.Closers, func() { _ = accConn.Close() })
	keysConn, err := grpc.NewClient(cfg.KeysAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("keys client for %q: %w", cfg.KeysAddr, err)
	}
	u.Closers = append(u.Closers, func() { _ = keysConn.Close() })
	accounts := accountsv1.NewInternalServiceClient(accConn)

	g, err := server.NewGRPC(server.GRPCConfig{
		Name:         Name,
		Addr:         cfg.GRPCAddr,
		Logger:       log,
		Authenticate: authclient.New(accounts, keysv1.NewKeysServiceClient(keysConn), cfg.OperatorToken),
	})
	if err != nil {
		return nil, err
	}
	auditv1.RegisterAuditServiceServer(g.Server, api.New(api.Deps{Store: st, CursorSecret: cfg.OperatorToken}))

	job := &retention.Job{
		Store: st, Accounts: accounts, Operator: cfg.OperatorToken, Interval: cfg.RetentionInterval,
		Free: cfg.RetentionFree, Pro: cfg.RetentionPro, Log: log.Named("retention"),
	}
	u.GRPC = g
	u.Gateway = server.Gateway{Conn: g.LocalConn(), Register: registerGateway}
	u.Ready = server.Readiness(nc.IsConnected, st.Ping)
	u.Workers = append(u.Workers, cons.Run, job.Run)
	return u, nil
}

func registerGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	return auditv1.RegisterAuditServiceHandler(ctx, mux, conn)
}

// Run serves the audit service alone, with its REST bridge on cfg.HTTPAddr, until ctx ends.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	u, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace}, u)
}
