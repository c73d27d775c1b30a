package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
)

func TestConfigFromEnv(t *testing.T) {
	defaults := audit.Config{
		Common: settings.Common{
			Namespace:      "latchkey",
			NATSURL:        "nats://127.0.0.1:4222",
			StreamReplicas: 1,
			StreamWait:     time.Minute,
			ShutdownGrace:  10 * time.Second,
		},
		Postgres:           settings.Postgres{DatabaseURL: "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"},
		AccountsPeer:       settings.AccountsPeer{AccountsAddr: "127.0.0.1:8081"},
		KeysPeer:           settings.KeysPeer{KeysAddr: "127.0.0.1:8082"},
		GRPCAddr:           "127.0.0.1:8083",
		HTTPAddr:           "127.0.0.1:8093",
		RetentionInterval:  time.Hour,
		RetentionFree:      720 * time.Hour,
		RetentionPro:       8760 * time.Hour,
		CheckpointEvery:    100,
		CheckpointInterval: time.Minute,
		Limits: limits.Config{
			PerIP:      ratelimit.Limit{PerSecond: 10, Burst: 100},
			PerKey:     ratelimit.Limit{PerSecond: 100, Burst: 1000},
			PerAccount: ratelimit.Limit{PerSecond: 500, Burst: 5000},
		},
	}
	testutil.RequireEnvCases(t, audit.ConfigFromEnv, defaults,
		testutil.EnvCase[audit.Config]{Name: "defaults"},
		testutil.EnvCase[audit.Config]{Name: "every variable", Env: map[string]string{
			"AUDIT_GRPC_ADDR": "0.0.0.0:9083", "AUDIT_HTTP_ADDR": "", "DATABASE_URL": "postgres://db/prod",
			"NATS_URL": "nats://nats:4222", "LATCHKEY_NAMESPACE": "prod", "LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef",
			"ACCOUNTS_GRPC_ADDR": "accounts:8081", "KEYS_GRPC_ADDR": "keys:8082",
			"AUDIT_RETENTION_INTERVAL": "10m", "AUDIT_RETENTION_FREE": "48h", "AUDIT_RETENTION_PRO": "87600h",
			"LATCHKEY_SHUTDOWN_GRACE": "0s", "LATCHKEY_LOG_LEVEL": "error",
		}, Want: func(c *audit.Config) {
			c.GRPCAddr, c.DatabaseURL, c.NATSURL = "0.0.0.0:9083", "postgres://db/prod", "nats://nats:4222"
			c.Namespace, c.OperatorToken = "prod", "0123456789abcdef"
			c.AccountsAddr, c.KeysAddr = "accounts:8081", "keys:8082"
			c.RetentionInterval, c.RetentionFree, c.RetentionPro = 10*time.Minute, 48*time.Hour, 87600*time.Hour
			c.ShutdownGrace, c.Log.Level = 0, zapcore.ErrorLevel
		}},
	)
}

// Every value that does not parse is reported at once, by variable.
func TestConfigFromEnvBadValues(t *testing.T) {
	testutil.RequireBadValuesNamed(t, audit.ConfigFromEnv, map[string]string{
		"AUDIT_RETENTION_INTERVAL": "hourly",
		"AUDIT_RETENTION_PRO":      "-1h",
		"AUDIT_RETENTION_FREE":     "30d",
		"LATCHKEY_SHUTDOWN_GRACE":  "10",
		"LATCHKEY_LOG_LEVEL":       "chatty",
	})
}

func TestValidate(t *testing.T) {
	err := audit.Config{Common: settings.Common{Namespace: "a.b", OperatorToken: "short"}, RetentionFree: time.Hour}.Validate()
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
	cfg := audit.Config{Postgres: settings.Postgres{DatabaseURL: testutil.DatabaseURL(t)}}
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
			_, err := audit.Migrate(context.Background(), audit.Config{Postgres: settings.Postgres{DatabaseURL: u}})
			errs <- err
		}()
	}
	for range urls {
		require.NoError(t, <-errs)
	}
}
