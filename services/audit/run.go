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
	"regexp"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/envconfig"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/periodic"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/server"
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

// Config configures the audit service. ConfigFromEnv reads it from the environment.
type Config struct {
	// GRPCAddr is where the gRPC server listens (AUDIT_GRPC_ADDR, default 127.0.0.1:8083);
	// "" serves in process only.
	GRPCAddr string
	// HTTPAddr is the REST, /healthz and /metrics listener when the service runs alone
	// (AUDIT_HTTP_ADDR, default 127.0.0.1:8093). New ignores it: an all-in-one runner
	// serves the unit's gateway on its own listener.
	HTTPAddr string
	// DatabaseURL is the Postgres connection string (DATABASE_URL); the service uses
	// schema "audit" in it. Migrations run as this user, which must be able to create the
	// NOLOGIN role latchkey_audit_writer (or find it made by a DBA) and SET ROLE to it;
	// the service's own connections then run as that role.
	DatabaseURL string
	// NATSURL is the NATS server with JetStream (NATS_URL, default nats://127.0.0.1:4222).
	NATSURL string
	// Namespace prefixes NATS subjects and the audit stream (LATCHKEY_NAMESPACE, default
	// "latchkey").
	Namespace string
	// OperatorToken authenticates Append and the service's own calls to accounts and keys
	// (LATCHKEY_OPERATOR_TOKEN, required; auth.CheckOperatorToken has its bounds). It also keys the MAC of
	// listing cursors, so changing it invalidates cursors in flight.
	OperatorToken string
	// AccountsAddr is the accounts service's gRPC address (ACCOUNTS_GRPC_ADDR, default
	// 127.0.0.1:8081): sessions are authenticated and plans looked up there. Dialled
	// lazily, so accounts may start later.
	AccountsAddr string
	// KeysAddr is the keys service's gRPC address (KEYS_GRPC_ADDR, default
	// 127.0.0.1:8082): account keys are verified there. Dialled lazily.
	KeysAddr string
	// RetentionInterval is how often retention runs (AUDIT_RETENTION_INTERVAL, default 1h).
	RetentionInterval time.Duration
	// RetentionFree is how long events are kept on the free plan, for unknown accounts and
	// for events with no account (AUDIT_RETENTION_FREE, default 720h, at least 24h).
	RetentionFree time.Duration
	// RetentionPro is how long events are kept on the pro plan (AUDIT_RETENTION_PRO,
	// default 8760h, at least 24h).
	RetentionPro time.Duration
	// ShutdownGrace is how long in-flight calls get to finish on stop
	// (LATCHKEY_SHUTDOWN_GRACE, default 10s).
	ShutdownGrace time.Duration
	// SigningKey signs the chains' checkpoints (AUDIT_SIGNING_KEY): standard base64 of a
	// 32-byte Ed25519 seed, e.g. `openssl rand -base64 32`. Keep it out of the database:
	// whoever holds it can forge checkpoints. When empty, the key is derived from
	// OperatorToken with HKDF-SHA-256, and changing the token changes the key. Checkpoints
	// signed under another key no longer verify.
	SigningKey string
	// CheckpointEvery is how many events an account's chain may grow by before the append
	// that reaches it signs its head (AUDIT_CHECKPOINT_EVERY, default 100, at least 1).
	CheckpointEvery int
	// CheckpointInterval is how often every head that moved since its last checkpoint is
	// signed, however few events it grew by (AUDIT_CHECKPOINT_INTERVAL, default 1m).
	CheckpointInterval time.Duration
}

// ConfigFromEnv reads the configuration from the environment. It reports values that do
// not parse; Validate (called by New) checks the rest, so `audit migrate` needs only
// DATABASE_URL.
func ConfigFromEnv() (Config, error) {
	var r envconfig.Reader
	cfg := Config{
		GRPCAddr:           r.String("AUDIT_GRPC_ADDR", "127.0.0.1:8083"),
		HTTPAddr:           r.String("AUDIT_HTTP_ADDR", "127.0.0.1:8093"),
		DatabaseURL:        r.String("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"),
		NATSURL:            r.String("NATS_URL", "nats://127.0.0.1:4222"),
		Namespace:          r.String("LATCHKEY_NAMESPACE", natsx.DefaultNamespace),
		OperatorToken:      r.String("LATCHKEY_OPERATOR_TOKEN", ""),
		AccountsAddr:       r.String("ACCOUNTS_GRPC_ADDR", "127.0.0.1:8081"),
		KeysAddr:           r.String("KEYS_GRPC_ADDR", "127.0.0.1:8082"),
		RetentionInterval:  r.Duration("AUDIT_RETENTION_INTERVAL", time.Hour),
		RetentionFree:      r.Duration("AUDIT_RETENTION_FREE", 720*time.Hour),
		RetentionPro:       r.Duration("AUDIT_RETENTION_PRO", 8760*time.Hour),
		ShutdownGrace:      r.Duration("LATCHKEY_SHUTDOWN_GRACE", 10*time.Second),
		SigningKey:         r.String("AUDIT_SIGNING_KEY", ""),
		CheckpointEvery:    r.Int("AUDIT_CHECKPOINT_EVERY", 100),
		CheckpointInterval: r.Duration("AUDIT_CHECKPOINT_INTERVAL", time.Minute),
	}
	return cfg, r.Err()
}

// namespaceRE is what may name a NATS subject token and a stream.
var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Validate reports every setting that cannot work, at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DatabaseURL == "" {
		bad("DATABASE_URL is required")
	}
	if c.NATSURL == "" {
		bad("NATS_URL is required")
	}
	if !namespaceRE.MatchString(c.Namespace) {
		bad("LATCHKEY_NAMESPACE=%q must be 1 to 64 letters, digits, '_' or '-'", c.Namespace)
	}
	if err := auth.CheckOperatorToken(c.OperatorToken); err != nil {
		bad("%v", err)
	}
	if c.AccountsAddr == "" {
		bad("ACCOUNTS_GRPC_ADDR is required")
	}
	if c.KeysAddr == "" {
		bad("KEYS_GRPC_ADDR is required")
	}
	if c.RetentionInterval <= 0 {
		bad("AUDIT_RETENTION_INTERVAL must be positive")
	}
	if c.RetentionFree < MinRetention || c.RetentionPro < MinRetention {
		bad("AUDIT_RETENTION_FREE and AUDIT_RETENTION_PRO must be at least %s", MinRetention)
	}
	if c.ShutdownGrace < 0 {
		bad("LATCHKEY_SHUTDOWN_GRACE must not be negative")
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
	signer, err := cfg.signer()
	if err != nil {
		return nil, err
	}
	st := store.New(pool, store.Checkpoints{Signer: signer, Every: int64(cfg.CheckpointEvery)})

	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-"+Name, log)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
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
		Authenticate: auth.NewRemote(accounts, keysv1.NewKeysServiceClient(keysConn), cfg.OperatorToken).Authenticate,
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
	u.Workers = append(u.Workers, cons.Run, job.Run, func(ctx context.Context) error {
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
	return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace}, u)
}
