package accounts_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
)

func TestConfigFromEnv(t *testing.T) {
	defaults := accounts.Config{
		Common: settings.Common{
			Namespace:      "latchkey",
			NATSURL:        "nats://127.0.0.1:4222",
			StreamReplicas: 1,
			StreamWait:     time.Minute,
			ShutdownGrace:  10 * time.Second,
		},
		Postgres:     settings.Postgres{DatabaseURL: "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"},
		GRPCAddr:     "127.0.0.1:8081",
		HTTPAddr:     "127.0.0.1:8091",
		SessionTTL:   24 * time.Hour,
		StepUpWindow: 5 * time.Minute,
		TrialPeriod:  720 * time.Hour,
		Limits: limits.Config{
			PerIP:      ratelimit.Limit{PerSecond: 10, Burst: 100},
			PerKey:     ratelimit.Limit{PerSecond: 100, Burst: 1000},
			PerAccount: ratelimit.Limit{PerSecond: 500, Burst: 5000},
		},
		ProjectChangesPerHour: 100,
	}
	testutil.RequireEnvCases(t, accounts.ConfigFromEnv, defaults,
		testutil.EnvCase[accounts.Config]{Name: "defaults"},
		testutil.EnvCase[accounts.Config]{Name: "every variable", Env: map[string]string{
			"ACCOUNTS_GRPC_ADDR": "0.0.0.0:9081", "ACCOUNTS_HTTP_ADDR": "0.0.0.0:9091",
			"DATABASE_URL": "postgres://db/prod", "NATS_URL": "nats://nats:4222",
			"LATCHKEY_NAMESPACE": "prod", "LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef",
			"KEYS_GRPC_ADDR": "keys:8082", "LATCHKEY_SESSION_TTL": "1h", "LATCHKEY_STEP_UP_WINDOW": "90s",
			"LATCHKEY_TRIAL_PERIOD": "0s", "LATCHKEY_LIMIT_IP": "1/s:2", "LATCHKEY_LIMIT_KEY": "off",
			"LATCHKEY_LIMIT_ACCOUNT": "0.5/s:10", "LATCHKEY_CAP_PROJECT_CHANGES_PER_HOUR": "0",
			"LATCHKEY_SHUTDOWN_GRACE": "30s", "LATCHKEY_LOG_LEVEL": "warn", "LATCHKEY_LOG_FORMAT": "console",
		}, Want: func(c *accounts.Config) {
			c.GRPCAddr, c.HTTPAddr, c.DatabaseURL, c.NATSURL = "0.0.0.0:9081", "0.0.0.0:9091", "postgres://db/prod", "nats://nats:4222"
			c.Namespace, c.OperatorToken, c.KeysAddr = "prod", "0123456789abcdef", "keys:8082"
			c.SessionTTL, c.StepUpWindow, c.TrialPeriod, c.ShutdownGrace = time.Hour, 90*time.Second, 0, 30*time.Second
			c.Limits = limits.Config{PerIP: ratelimit.Limit{PerSecond: 1, Burst: 2}, PerAccount: ratelimit.Limit{PerSecond: 0.5, Burst: 10}}
			c.ProjectChangesPerHour = 0
			c.Log = logging.Config{Level: zapcore.WarnLevel, Format: logging.Console}
		}},
	)
}

// Every value that does not parse is reported at once, by variable.
func TestConfigFromEnvBadValues(t *testing.T) {
	testutil.RequireBadValuesNamed(t, accounts.ConfigFromEnv, map[string]string{
		"LATCHKEY_SESSION_TTL":                  "a day",
		"LATCHKEY_STEP_UP_WINDOW":               "-5m",
		"LATCHKEY_LIMIT_IP":                     "10 per second",
		"LATCHKEY_CAP_PROJECT_CHANGES_PER_HOUR": "many",
		"LATCHKEY_SHUTDOWN_GRACE":               "soon",
		"LATCHKEY_LOG_FORMAT":                   "xml",
	})
}

func TestValidate(t *testing.T) {
	cfg := accounts.Config{Common: settings.Common{Namespace: "bad.ns", OperatorToken: "short"}, TrialPeriod: -1}
	err := cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{
		"DATABASE_URL", "NATS_URL", "LATCHKEY_NAMESPACE", "LATCHKEY_OPERATOR_TOKEN",
		"LATCHKEY_SESSION_TTL", "LATCHKEY_STEP_UP_WINDOW", "LATCHKEY_TRIAL_PERIOD",
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "short", "the operator token is never echoed")
}

// New fails cleanly, holding nothing open, when a dependency is missing.
func TestNewWithoutNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := accounts.Config{
		Common:     settings.Common{NATSURL: "nats://127.0.0.1:1", Namespace: testutil.Namespace(t), OperatorToken: "0123456789abcdef"},
		Postgres:   settings.Postgres{DatabaseURL: testutil.DatabaseURL(t)},
		SessionTTL: time.Hour, StepUpWindow: time.Minute,
	}
	u, err := accounts.New(ctx, cfg, zap.NewNop())
	require.ErrorContains(t, err, "nats")
	require.Nil(t, u)
	// The migration ran before NATS was tried, and running it again applies nothing.
	applied, err := accounts.Migrate(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, applied)
}
