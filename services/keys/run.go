// Package keys is the keys service: it issues, lists, rotates, revokes and verifies API
// keys, and publishes every change through its transactional outbox.
package keys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/idempotency"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/services/keys/internal/api"
	"github.com/latchkey/latchkey/services/keys/internal/directory"
	"github.com/latchkey/latchkey/services/keys/internal/link"
	"github.com/latchkey/latchkey/services/keys/internal/receipts"
	"github.com/latchkey/latchkey/services/keys/internal/scanning"
	"github.com/latchkey/latchkey/services/keys/internal/store"
	"github.com/latchkey/latchkey/services/keys/internal/usage"
	"github.com/latchkey/latchkey/services/keys/migrations"
)

// Schema is the Postgres schema the keys service owns.
const Schema = "keys"

// Config is the keys service's configuration. ConfigFromEnv reads it from the
// environment: each field's tags name its variable and default.
type Config struct {
	// Common are the settings every service shares: namespace, operator token, NATS,
	// shutdown grace, logging.
	settings.Common
	// Postgres is the database; the service uses schema "keys" in it.
	settings.Postgres
	// AccountsPeer is the accounts service's gRPC address.
	settings.AccountsPeer
	// GRPCAddr is where the gRPC API listens.
	GRPCAddr string `env:"KEYS_GRPC_ADDR" envDefault:"127.0.0.1:8082"`
	// HTTPAddr is the REST bridge when run on its own; "" for none.
	HTTPAddr string `env:"KEYS_HTTP_ADDR" envDefault:"127.0.0.1:8092"`
	// Pepper keys the hash of every stored key: at least keyformat.MinPepperLen bytes.
	// Changing it invalidates every key.
	Pepper string `env:"LATCHKEY_PEPPER"`
	// KeyProfile names the key types: "default", an embedded profile (typed, envkeys,
	// deeptracer, gmk, lumiqtrace) or a JSON file (keyformat.LoadProfile).
	KeyProfile string `env:"LATCHKEY_KEY_PROFILE" envDefault:"default"`
	// ReplicaURL is a read replica of DATABASE_URL (DATABASE_REPLICA_URL), for key
	// listings (GET /v1/keys) only; "" reads everything from DATABASE_URL. Verification and
	// every write always use the primary, so a replica's lag can show a listing a moment
	// old but never let a revoked key be verified (docs/scale.md, "Read replicas").
	ReplicaURL string `env:"DATABASE_REPLICA_URL"`
	// DirectoryTTL bounds how long account and project facts are cached.
	DirectoryTTL time.Duration `env:"LATCHKEY_DIRECTORY_TTL" envDefault:"30s"`
	// UsageFlushInterval is how often last_used_at is written.
	UsageFlushInterval time.Duration `env:"LATCHKEY_USAGE_FLUSH_INTERVAL" envDefault:"5s"`
	// Limits are the per-IP, per-key and per-account token buckets.
	Limits limits.Config
	// AnonymousLimit is the per-client-IP bucket of POST /v1/anonymous-keys, which needs
	// no credentials: "<rate>/s:<burst>" or "off". It is taken besides LATCHKEY_LIMIT_IP.
	AnonymousLimit ratelimit.Limit `env:"LATCHKEY_LIMIT_ANONYMOUS" envDefault:"1/s:10"`
	// RotationsPerHour caps key rotations per account, across replicas; 0 for no cap.
	RotationsPerHour int `env:"LATCHKEY_CAP_ROTATIONS_PER_HOUR" envDefault:"10"`
	// AccountKeysPerHour caps creating or rotating account keys per account; 0 for no cap.
	AccountKeysPerHour int `env:"LATCHKEY_CAP_ACCOUNT_KEYS_PER_HOUR" envDefault:"10"`
	// ScanningPublicKeys are the keys leak reports (POST /v1/secret-scanning/reports) must
	// be signed with: a JSON array of {"key_identifier", "key"} with key a PEM ECDSA P-256
	// public key, or GitHub's document {"public_keys": [...]} as
	// api.github.com/meta/public_keys/secret_scanning serves it. A value that does not
	// read stops start-up; none (the default) turns leak reports off (404).
	ScanningPublicKeys scanning.PublicKeys `env:"LATCHKEY_SCANNING_PUBLIC_KEYS"`
	// ServerCreatesPerHour caps POST /v1/servers per account, across replicas; 0 for no cap.
	ServerCreatesPerHour int `env:"LATCHKEY_CAP_SERVER_CREATES_PER_HOUR" envDefault:"100"`
	// ServerDeletesPerHour caps DELETE /v1/servers/{id} per account; 0 for no cap.
	ServerDeletesPerHour int `env:"LATCHKEY_CAP_SERVER_DELETES_PER_HOUR" envDefault:"100"`
	// ServerRotationsPerHour caps POST /v1/servers/{id}:rotateKey per account; 0 for no cap.
	ServerRotationsPerHour int `env:"LATCHKEY_CAP_SERVER_ROTATIONS_PER_HOUR" envDefault:"10"`
}

// ConfigFromEnv reads the configuration from the environment, with defaults for one
// machine, reporting every value that does not parse. New validates it, so `keys
// migrate` needs only DATABASE_URL.
func ConfigFromEnv() (Config, error) {
	var c Config
	err := settings.Parse(&c)
	return c, err
}

// Validate reports every missing or bad setting, at once.
func (c Config) Validate() error {
	errs := []error{c.Common.Validate(), c.Postgres.Validate(), c.AccountsPeer.Validate()}
	if len(c.Pepper) < keyformat.MinPepperLen {
		errs = append(errs, fmt.Errorf("LATCHKEY_PEPPER must be set, at least %d bytes", keyformat.MinPepperLen))
	}
	if _, err := keyformat.LoadProfile(c.KeyProfile); err != nil {
		errs = append(errs, fmt.Errorf("LATCHKEY_KEY_PROFILE: %w", err))
	}
	if c.DirectoryTTL <= 0 || c.UsageFlushInterval <= 0 {
		errs = append(errs, errors.New("LATCHKEY_DIRECTORY_TTL and LATCHKEY_USAGE_FLUSH_INTERVAL must be positive"))
	}
	return errors.Join(errs...)
}

// New opens every resource the service needs, registering each closer on the unit, and
// returns it ready to serve. It listens on nothing: server.Run does.
func New(ctx context.Context, cfg Config, log *zap.Logger) (_ *server.Unit, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With(zap.String("service", "keys"))
	types, err := keyformat.LoadProfile(cfg.KeyProfile)
	if err != nil {
		return nil, err
	}
	for _, t := range types.Types() {
		if strings.HasPrefix(t.Prefix, auth.SessionTokenPrefix) {
			return nil, fmt.Errorf("key type %s: prefix %q collides with session tokens", t.Name, t.Prefix)
		}
	}
	if n := cfg.ScanningPublicKeys.Len(); n > 0 {
		log.Info("leak reports accepted", zap.String("path", api.SecretScanningPath), zap.Strings("key_identifiers", cfg.ScanningPublicKeys.IDs()))
	}
	hasher, err := keyformat.NewHasher([]byte(cfg.Pepper))
	if err != nil {
		return nil, err
	}
	files, err := cfg.TLS.Load(log)
	if err != nil {
		return nil, err
	}
	u := &server.Unit{Name: "keys", TLS: files} // not the named result: a failed New returns nil, and the deferred Close needs u
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
	if _, err := postgres.Migrate(ctx, pool, Schema, outbox.Migrations, quota.Migrations, idempotency.Migrations, migrations.FS); err != nil {
		return nil, err
	}
	var dirRef atomic.Pointer[directory.Directory] // set below; the handler may run first
	nc, err := natsx.Connect(cfg.NATSURL, "latchkey-keys", log, files.NATSOption(cfg.NATSURL), nats.ReconnectHandler(func(*nats.Conn) {
		if d := dirRef.Load(); d != nil {
			d.Flush() // events may have been missed while disconnected
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
	keeper, err := natsx.KeepOutboxStreams(ctx, js, cfg.Namespace, cfg.StreamWait, log)
	if err != nil {
		return nil, err
	}
	accConn, err := server.DialPeer(cfg.AccountsAddr, files)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, func() { _ = accConn.Close() })
	dir := directory.New(accountsv1.NewInternalServiceClient(accConn), cfg.OperatorToken, cfg.DirectoryTTL)
	dirRef.Store(dir)
	sub, err := dir.Subscribe(nc, cfg.Namespace)
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, func() { _ = sub.Unsubscribe() })

	tracker := receipts.New(nc, cfg.Namespace)
	hbSub, err := tracker.Start()
	if err != nil {
		return nil, err
	}
	u.Closers = append(u.Closers, func() { _ = hbSub.Unsubscribe() })

	st := store.New(pool, cfg.Namespace)
	if cfg.ReplicaURL != "" {
		replica, err := postgres.Connect(ctx, cfg.ReplicaURL, Schema, 0)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_REPLICA_URL: %w", err)
		}
		u.Closers = append(u.Closers, replica.Close)
		if err := replicaHoldsKeys(ctx, replica); err != nil {
			return nil, err
		}
		st.ListFromReplica(replica)
	}
	relay := outbox.NewRelay(pool, js, log)
	uses := usage.New(st.TouchLastUsed, cfg.UsageFlushInterval, log)
	anonymous := limits.NewBucket(cfg.AnonymousLimit)
	handlers := api.New(api.Deps{
		Anonymous: anonymous,
		Linker:    link.New(js, cfg.Namespace),
		Store:     st, Types: types, Hasher: hasher, Dir: dir, Usage: uses, Receipts: tracker,
		Notify: relay.Notify, Operator: cfg.OperatorToken,
		Caps:       api.NewCaps(cfg.RotationsPerHour, cfg.AccountKeysPerHour),
		ServerCaps: api.NewServerCaps(cfg.ServerCreatesPerHour, cfg.ServerDeletesPerHour, cfg.ServerRotationsPerHour),
	})
	audit := auditlog.New(pool, cfg.Namespace, relay.Notify, log, api.AuditActions)
	lim := limits.New(cfg.Limits)
	// Stored answers hold new secrets: seal them under a key derived from the pepper. A
	// revocation may mint a replacement (replace_on_revoke): a retry with its
	// Idempotency-Key gets that answer again, secret and all.
	sealKey := hmac.New(sha256.New, []byte(cfg.Pepper))
	sealKey.Write([]byte("latchkey idempotency records"))
	idem := idempotency.New(pool, sealKey.Sum(nil), keysv1.KeysService_CreateKey_FullMethodName, keysv1.KeysService_RotateKey_FullMethodName,
		// Not ImportKey: its body holds the plaintext, and a record keeps a plain SHA-256 of
		// the body; a retried import is already_exists, which says it is stored.
		keysv1.KeysService_ClaimKey_FullMethodName, keysv1.KeysService_RevokeKey_FullMethodName, keysv1.KeysService_DeleteKey_FullMethodName,
		keysv1.ServersService_CreateServer_FullMethodName, keysv1.ServersService_RotateServerKey_FullMethodName)
	g, err := server.NewGRPC(server.GRPCConfig{
		Name: "keys", Addr: cfg.GRPCAddr, Logger: log, Authenticate: handlers.Authenticate, OnCall: audit.OnCall,
		Interceptors: []grpc.UnaryServerInterceptor{audit.Interceptor(), lim.Unary, idem.Unary},
		TLS:          files,
	})
	if err != nil {
		return nil, err
	}
	keysv1.RegisterKeysServiceServer(g.Server, handlers)
	keysv1.RegisterInternalServiceServer(g.Server, handlers.Internal())
	keysv1.RegisterServersServiceServer(g.Server, handlers.Servers())

	u.GRPC = g
	u.Gateway = server.Gateway{Conn: g.LocalConn(), Register: func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
		if err := keysv1.RegisterKeysServiceHandler(ctx, mux, conn); err != nil {
			return err
		}
		return keysv1.RegisterServersServiceHandler(ctx, mux, conn)
	}, BrowserPaths: []string{"/v1/session-keys"}, // web pages mint session keys (CORS)
		// Signed over the raw body, so a plain handler rather than a bridged RPC.
		Handlers: map[string]http.Handler{api.SecretScanningPath: handlers.SecretScanning(&cfg.ScanningPublicKeys)}}
	// Not ready while a stream is missing or the relay is stuck (its oldest pending event
	// older than a minute).
	kept := server.Readiness(keeper.Ready, st.Ping)
	u.Ready = func() bool { return kept() && relay.Ready() }
	u.Workers = []func(context.Context) error{
		keeper.Run,
		relay.Run,
		uses.Run,
		dir.Prune,
		lim.Sweep,
		anonymous.Sweep,
		idem.Prune,
		handlers.Sweeps, // after the calls in flight, before NATS closes
	}
	return u, nil
}

// Run serves the keys service on its own until ctx ends.
func Run(ctx context.Context, cfg Config, log *zap.Logger) error {
	u, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: cfg.HTTPAddr, Grace: cfg.ShutdownGrace, TLS: u.TLS}, u)
}

// Migrate applies the keys schema's migrations and returns the versions applied.
func Migrate(ctx context.Context, cfg Config) ([]string, error) {
	pool, err := postgres.Connect(ctx, cfg.DatabaseURL, Schema, 2)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer pool.Close()
	return postgres.Migrate(ctx, pool, Schema, outbox.Migrations, quota.Migrations, idempotency.Migrations, migrations.FS)
}

// replicaHoldsKeys checks, at start, that DATABASE_REPLICA_URL is a copy of this service's
// database (its schema holds the keys table), so a wrong URL stops the service with a clear
// error rather than failing every listing later.
func replicaHoldsKeys(ctx context.Context, replica *pgxpool.Pool) error {
	var table *string
	if err := replica.QueryRow(ctx, "SELECT to_regclass('keys')::text").Scan(&table); err != nil {
		return fmt.Errorf("DATABASE_REPLICA_URL: %w", err)
	}
	if table == nil {
		return fmt.Errorf("DATABASE_REPLICA_URL: no table keys in schema %q: point it at a replica of DATABASE_URL's database, migrated", Schema)
	}
	return nil
}
