package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
)

func TestConfigFromEnvDefaults(t *testing.T) {
	for _, k := range []string{
		"AUDIT_GRPC_ADDR", "AUDIT_HTTP_ADDR", "DATABASE_URL", "NATS_URL", "LATCHKEY_NAMESPACE",
		"ACCOUNTS_GRPC_ADDR", "KEYS_GRPC_ADDR", "AUDIT_RETENTION_INTERVAL", "AUDIT_RETENTION_FREE",
		"AUDIT_RETENTION_PRO", "LATCHKEY_SHUTDOWN_GRACE", "AUDIT_SIGNING_KEY", "AUDIT_CHECKPOINT_EVERY",
		"AUDIT_CHECKPOINT_INTERVAL",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("LATCHKEY_OPERATOR_TOKEN", "0123456789abcdef")
	cfg, err := audit.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, audit.Config{
		GRPCAddr:           "127.0.0.1:8083",
		HTTPAddr:           "127.0.0.1:8093",
		DatabaseURL:        "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable",
		NATSURL:            "nats://127.0.0.1:4222",
		Namespace:          "latchkey",
		OperatorToken:      "0123456789abcdef",
		AccountsAddr:       "127.0.0.1:8081",
		KeysAddr:           "127.0.0.1:8082",
		RetentionInterval:  time.Hour,
		RetentionFree:      720 * time.Hour,
		RetentionPro:       8760 * time.Hour,
		ShutdownGrace:      10 * time.Second,
		CheckpointEvery:    100,
		CheckpointInterval: time.Minute,
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestConfigFromEnvBadValues(t *testing.T) {
	t.Setenv("AUDIT_RETENTION_INTERVAL", "hourly")
	t.Setenv("AUDIT_RETENTION_PRO", "-1h")
	_, err := audit.ConfigFromEnv()
	require.ErrorContains(t, err, "AUDIT_RETENTION_INTERVAL")
	require.ErrorContains(t, err, "AUDIT_RETENTION_PRO")
}

func TestValidate(t *testing.T) {
	err := audit.Config{Namespace: "a.b", OperatorToken: "short", RetentionFree: time.Hour}.Validate()
	for _, want := range []string{
		"DATABASE_URL", "NATS_URL", "LATCHKEY_NAMESPACE", "LATCHKEY_OPERATOR_TOKEN", "ACCOUNTS_GRPC_ADDR",
		"KEYS_GRPC_ADDR", "AUDIT_RETENTION_INTERVAL", "AUDIT_RETENTION_FREE",
	} {
		require.ErrorContains(t, err, want)
	}
	_, err = audit.New(context.Background(), audit.Config{}, zap.NewNop())
	require.Error(t, err, "New validates")
}

func TestMigrateTwice(t *testing.T) {
	cfg := audit.Config{DatabaseURL: testutil.DatabaseURL(t)}
	applied, err := audit.Migrate(context.Background(), cfg)
	require.NoError(t, err)
	require.Equal(t, []string{"0001_init", "0002_checkpoints"}, applied)
	applied, err = audit.Migrate(context.Background(), cfg)
	require.NoError(t, err)
	require.Empty(t, applied)
}

// TestMigrateSideBySide: the writer role is cluster-wide; databases migrating at once
// (replicas of several deployments, or parallel tests) must not trip over creating it.
func TestMigrateSideBySide(t *testing.T) {
	urls := make([]string, 4)
	for i := range urls {
		urls[i] = testutil.DatabaseURL(t)
	}
	errs := make(chan error, len(urls))
	for _, u := range urls {
		go func() {
			_, err := audit.Migrate(context.Background(), audit.Config{DatabaseURL: u})
			errs <- err
		}()
	}
	for range urls {
		require.NoError(t, <-errs)
	}
}
