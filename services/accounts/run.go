// Package accounts is the accounts service: accounts (orgs), users, passwords, sessions,
// plans and projects, and Authenticate for the other services. New builds it as a
// server.Unit, so it runs alone (Run) or beside other services in one process.
package accounts

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/idempotency"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/periodic"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/accounts/internal/api"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
	"github.com/latchkey/latchkey/services/accounts/migrations"
)

// Name is the unit's name in logs, health and listener addresses.
const Name = "accounts"

// Schema is the Postgres schema the service owns.
const Schema = "accounts"

// Config configures the accounts service. ConfigFromEnv reads it from the environment:
// each field's tags name its variable and default.
type Config struct {
	// Common are the settings every service shares: namespace, operator token, NATS,
	// shutdown grace, logging.
	settings.Common
	// Postgres is the database; the service uses schema "accounts" in it.
	settings.Postgres
	// GRPCAddr is where the gRPC server listens; "" serves in process only.
	GRPCAddr string `env:"ACCOUNTS_GRPC_ADDR" envDefault:"127.0.0.1:8081"`
	// HTTPAddr is the REST, /healthz and /metrics listener when the service runs alone.
	// New ignores it: an all-in-one runner serves the unit's gateway on its own listener.
	HTTPAddr string `env:"ACCOUNTS_HTTP_ADDR" envDefault:"127.0.0.1:8091"`
	// KeysAddr is the keys service's gRPC address; when set, account keys authenticate
	// here through its VerifyKey, and a project's environment can be dropped once the keys
	// service says no live key is bound to it. Empty: only sessions and the operator token
	// authenticate, and environments cannot be dropped.
	KeysAddr string `env:"KEYS_GRPC_ADDR"`
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration `env:"LATCHKEY_SESSION_TTL" envDefault:"24h"`
	// StepUpWindow is how long a password re-verification counts.
	StepUpWindow time.Duration `env:"LATCHKEY_STEP_UP_WINDOW" envDefault:"5m"`
	// TrialPeriod is how long after sign-up a new account's trial ends.
	TrialPeriod time.Duration `env:"LATCHKEY_TRIAL_PERIOD" envDefault:"720h"`
	// Limits are the per-IP, per-key and per-account token buckets.
	Limits limits.Config
	// ProjectChangesPerHour caps creating and deleting projects per account, across
	// replicas; 0 for no cap.
	ProjectChangesPerHour int `env:"LATCHKEY_CAP_PROJECT_CHANGES_PER_HOUR" envDefault:"100"`
}

// ConfigFromEnv reads the configuration from the environment. It reports every value
// that does not parse; Validate (called by New) checks the rest, so `accounts migrate`
// needs only DATABASE_URL.
func ConfigFromEnv() (Config, error) {
	var cfg Config
	err := settings.Parse(&cfg)
	return cfg, err
}

// Validate reports every setting that cannot work, at once.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Postgres.Validate()}
	if c.SessionTTL <= 0 {
		errs = append(errs, errors.New("LATCHKEY_SESSION_TTL must be positive"))
	}
	if c.StepUpWindow <= 0 {
		errs = append(errs, errors.New("LATCHKEY_STEP_UP_WINDOW must be positive"))
	}
	if c.TrialPeriod < 0 {
		errs = append(errs, errors.New("LATCHKEY_TRIAL_PERIOD must not be negative"))
	}
	return errors.Join(errs...)
}

// Migrate applies the accounts schema's pending migrations and returns their names.
func Migrate(ctx context.Context, cfg Config) ([]string, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is required")
	}
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, Schema, 2)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	return postgres.Migrate(ctx, pool, Schema, outbox.Migrations, quota.Migrations, idempotency.Migrations, migrations.FS)
}

// New validates cfg, opens and migrates Postgres, connects NATS, ensures the events
// stream and builds the service as a unit. It listens on nothing: server.Run does. On
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

	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, Schema, 0)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Closers = append(u.Closers, pool.Close)
	if applied, err := postgres.Migrate(ctx, pool, Schema, outbox.Migrations, quota.Migrations, idempotency.Migrations, migrations.FS); err != nil {
		return nil, err
	} else if len(applied) > 0 {
		log.Info("migrated", zap.Strings("versions", applied))
	}

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
	keeper, err := natsx.KeepOutboxStreams(ctx, js, cfg.Namespace, cfg.StreamWait, log)
	if err != nil {
		return nil, err
	}

	authn := &api.Authenticator{Operator: auth.OperatorToken(cfg.OperatorToken)}
	var liveKeys keysv1.InternalServiceClient
	if cfg.KeysAddr != "" {
		// NewClient does not connect until the first call, so keys may start later.
		conn, err := server.DialPeer(cfg.KeysAddr, files)
		if err != nil {
			return nil, fmt.Errorf("keys client for %q: %w", cfg.KeysAddr, err)
		}
		u.Closers = append(u.Closers, func() { _ = conn.Close() })
		authn.Keys = keysv1.NewKeysServiceClient(conn)
		liveKeys = keysv1.NewInternalServiceClient(conn)
	}

	st := store.New(pool, cfg.Namespace)
	authn.Store = st
	relay := outbox.NewRelay(pool, js, log.Named("outbox"))
	audit := auditlog.New(pool, cfg.Namespace, relay.Notify, log, api.AuditActions)
	lim := limits.New(cfg.Limits)
	// A project's creation may answer its key's secret (a per_project key type): stored
	// answers are sealed under a key derived from the operator token, which the database
	// does not hold.
	sealKey := hmac.New(sha256.New, []byte(cfg.OperatorToken))
	sealKey.Write([]byte("latchkey accounts idempotency records"))
	idem := idempotency.New(pool, sealKey.Sum(nil), accountsv1.AccountsService_CreateProject_FullMethodName)
	g, err := server.NewGRPC(server.GRPCConfig{
		Name:         Name,
		Addr:         cfg.GRPCAddr,
		Logger:       log,
		Authenticate: authn.Authenticate,
		Interceptors: []grpc.UnaryServerInterceptor{audit.Interceptor(), lim.Unary, idem.Unary},
		OnCall:       audit.OnCall,
		TLS:          files,
	})
	if err != nil {
		return nil, err
	}
	svc := api.New(api.Config{
		Store:         st,
		Notify:        relay.Notify,
		Authenticator: authn,
		PageTokenKey:  cfg.OperatorToken,
		SessionTTL:    cfg.SessionTTL,
		StepUpWindow:  cfg.StepUpWindow,
		TrialPeriod:   cfg.TrialPeriod,
		ProjectCap:    cfg.ProjectChangesPerHour,
		LiveKeys:      liveKeys,
		KeyTypes:      authn.Keys,
	})
	accountsv1.RegisterAccountsServiceServer(g.Server, svc.Accounts())
	accountsv1.RegisterAdminServiceServer(g.Server, svc.Admin())
	accountsv1.RegisterInternalServiceServer(g.Server, svc.Internal())

	u.GRPC = g
	u.Gateway = server.Gateway{Conn: g.LocalConn(), Register: registerGateway}
	// Not ready while a stream is missing or the relay is stuck (its oldest pending event
	// older than a minute).
	kept := server.Readiness(keeper.Ready, pool.Ping)
	u.Ready = func() bool { return kept() && relay.Ready() }
	u.Workers = append(u.Workers, keeper.Run, relay.Run, lim.Sweep, idem.Prune, func(ctx context.Context) error {
		return pruneSessions(ctx, st, log)
	})
	return u, nil
}

func registerGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	if err := accountsv1.RegisterAccountsServiceHandler(ctx, mux, conn); err != nil {
		return err
	}
	return accountsv1.RegisterAdminServiceHandler(ctx, mux, conn)
}

// Run serves the accounts service alone, with its REST bridge on cfg.HTTPAddr, until ctx
// ends.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	u, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace, TLS: u.TLS}, u)
}

// pruneSessions deletes sessions that ended over a day ago, hourly, so the table follows
// the users who are logged in.
func pruneSessions(ctx context.Context, st *store.Store, log *zap.Logger) error {
	return periodic.Every(ctx, time.Hour, func(ctx context.Context) {
		if _, err := st.PruneSessions(ctx, time.Now().Add(-24*time.Hour)); err != nil && ctx.Err() == nil {
			log.Warn("session pruning failed; will retry", zap.Error(err))
		}
	})
}
