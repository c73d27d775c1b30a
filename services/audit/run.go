// Package audit is the audit service: it stores the audit events every service hands to
// JetStream, once each, append-only (enforced by Postgres), in a hash chain per account;
// lists them; verifies the chains; and deletes events past their plan's retention. New
// builds it as a server.Unit, so it runs alone (Run) or beside other services in one
// process.
package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/periodic"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/audit/internal/api"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
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
	// Limits are the per-IP, per-key and per-account token buckets every management call
	// goes through, reads of the log included (verify walks a whole chain).
	Limits limits.Config
	// SigningKey signs the chains' checkpoints: standard base64 of a 32-byte Ed25519 seed,
	// e.g. `openssl rand -base64 32`. Keep it out of the database: whoever holds it can
	// forge checkpoints. When empty, the key is derived from OperatorToken with
	// HKDF-SHA-256, and changing the token changes the key. Checkpoints signed under
	// another key no longer verify.
	SigningKey string `env:"AUDIT_SIGNING_KEY"`
	// CheckpointEvery is how many events an account's chain may grow by before the append
	// that reaches it signs its head; at least 1.
	CheckpointEvery int `env:"AUDIT_CHECKPOINT_EVERY" envDefault:"100"`
	// CheckpointInterval is how often every head that moved since its last checkpoint is
	// signed, however few events it grew by.
	CheckpointInterval time.Duration `env:"AUDIT_CHECKPOINT_INTERVAL" envDefault:"1m"`
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
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.RetentionInterval <= 0 {
		bad("AUDIT_RETENTION_INTERVAL must be positive")
	}
	if c.RetentionFree < MinRetention || c.RetentionPro < MinRetention {
		bad("AUDIT_RETENTION_FREE and AUDIT_RETENTION_PRO must be at least %s", MinRetention)
	}
	if c.SigningKey != "" {
		if _, err := c.signer(); err != nil {
			bad("AUDIT_SIGNING_KEY: %v", err)
		}
	}
	if c.CheckpointEvery < 1 {
		bad("AUDIT_CHECKPOINT_EVERY must be at least 1")
	}
	if c.CheckpointInterval <= 0 {
		bad("AUDIT_CHECKPOINT_INTERVAL must be positive")
	}
	return errors.Join(errs...)
}

// signer is the checkpoint signer of SigningKey, or of a key derived from OperatorToken.
func (c Config) signer() (*chain.Signer, error) {
	if c.SigningKey == "" {
		seed, err := chain.DeriveSeed(c.OperatorToken)
		if err != nil {
			return nil, err
		}
		return chain.NewSigner(seed)
	}
	seed, err := base64.StdEncoding.DecodeString(c.SigningKey)
	if err != nil {
		return nil, errors.New("not standard base64")
	}
	return chain.NewSigner(seed)
}

// Migrate applies the audit schema's pending migrations, as the connecting user, and
// returns their names.
func Migrate(ctx context.Context, cfg Config) ([]string, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, Schema, 2)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
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
	files, err := cfg.TLS.Load(log)
	if err != nil {
		return nil, err
	}
	u := &server.Unit{Name: Name, TLS: files}
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
	signer, err := cfg.signer()
	if err != nil {
		return nil, err
	}
	st := store.New(pool, store.Checkpoints{Signer: signer, Every: int64(cfg.CheckpointEvery)})

	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-"+Name, log, files.NATSOption(cfg.NATSURL))
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	js = natsx.Replicated(js, int(cfg.StreamReplicas))
	cons, err := consumer.Ensure(ctx, js, cfg.Namespace, cfg.StreamWait, st.Append, log.Named("consumer"))
	if err != nil {
		return nil, fmt.Errorf("audit consumer: %w", err)
	}

	// NewClient does not connect until the first call, so accounts and keys may start later.
	accConn, err := server.DialPeer(cfg.AccountsAddr, files)
	if err != nil {
		return nil, fmt.Errorf("accounts client for %q: %w", cfg.AccountsAddr, err)
	}
	u.Closers = append(u.Closers, func() { _ = accConn.Close() })
	keysConn, err := server.DialPeer(cfg.KeysAddr, files)
	if err != nil {
		return nil, fmt.Errorf("keys client for %q: %w", cfg.KeysAddr, err)
	}
	u.Closers = append(u.Closers, func() { _ = keysConn.Close() })
	accounts := accountsv1.NewInternalServiceClient(accConn)

	lim := limits.New(cfg.Limits)
	g, err := server.NewGRPC(server.GRPCConfig{
		Name:         Name,
		Addr:         cfg.GRPCAddr,
		Logger:       log,
		Authenticate: auth.NewRemote(accounts, keysv1.NewKeysServiceClient(keysConn), cfg.OperatorToken).Authenticate,
		Interceptors: []grpc.UnaryServerInterceptor{lim.Unary},
		TLS:          files,
	})
	if err != nil {
		return nil, err
	}
	auditv1.RegisterAuditServiceServer(g.Server, api.New(api.Deps{Store: st, CursorSecret: cfg.OperatorToken, Signer: signer}))

	job := &retention.Job{
		Store: st, Accounts: accounts, Operator: cfg.OperatorToken, Interval: cfg.RetentionInterval,
		Free: cfg.RetentionFree, Pro: cfg.RetentionPro, Log: log.Named("retention"),
	}
	u.GRPC = g
	u.Gateway = server.Gateway{Conn: g.LocalConn(), Register: registerGateway}
	u.Ready = server.Readiness(cons.Ready, st.Ping)
	u.Workers = append(u.Workers, cons.Run, job.Run, lim.Sweep, func(ctx context.Context) error {
		return signHeads(ctx, st, cfg.CheckpointInterval, log.Named("checkpoints"))
	})
	return u, nil
}

// signHeads signs every chain head that moved since its last checkpoint, every interval.
func signHeads(ctx context.Context, st *store.Store, interval time.Duration, log *zap.Logger) error {
	return periodic.Every(ctx, interval, func(ctx context.Context) {
		if _, err := st.CheckpointHeads(ctx); err != nil && ctx.Err() == nil {
			log.Warn("signing chain heads failed; will retry", zap.Error(err))
		}
	})
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
	return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace, TLS: u.TLS}, u)
}
