package accounts_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
)

func TestConfigFromEnvDefaults(t *testing.T) {
	for _, k := range []string{
		"ACCOUNTS_GRPC_ADDR", "ACCOUNTS_HTTP_ADDR", "DATABASE_URL", "NATS_URL", "LATCHKEY_NAMESPACE",
		"KEYS_GRPC_ADDR", "LATCHKEY_SESSION_TTL", "LATCHKEY_STEP_UP_WINDOW", "LATCHKEY_TRIAL_PERIOD", "LATCHKEY_SHUTDOWN_GRACE",
		"LATCHKEY_LIMIT_IP", "LATCHKEY_LIMIT_KEY",
		"LATCHKEY_LIMIT_ACCOUNT", "LATCHKEY_CAP_PROJECT_CHANGES_PER_HOUR",
	} {
		t.Setenv(k, "")
	}
	t.Setenv("LATCHKEY_OPERATOR_TOKEN", "0123456789abcdef")
	cfg, err := accounts.ConfigFromEnv()
	require.NoError(t, err)
	require.Equal(t, accounts.Config{
		GRPCAddr:      "127.0.0.1:8081",
		HTTPAddr:      "127.0.0.1:8091",
		DatabaseURL:   "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable",
		NATSURL:       "nats://127.0.0.1:4222",
		Namespace:     "latchkey",
		OperatorToken: "0123456789abcdef",
		SessionTTL:    24 * time.Hour,
		StepUpWindow:  5 * time.Minute,
		TrialPeriod:   720 * time.Hour,
		ShutdownGrace: 10 * time.Second,
		Limits: limits.Config{
			PerIP:      ratelimit.Limit{PerSecond: 10, Burst: 100},
			PerKey:     ratelimit.Limit{PerSecond: 100, Burst: 1000},
			PerAccount: ratelimit.Limit{PerSecond: 500, Burst: 5000},
		},
		ProjectChangesPerHour: 100,
	}, cfg)
	require.NoError(t, cfg.Validate())
}

func TestConfigFromEnvBadValues(t *testing.T) {
	t.Setenv("LATCHKEY_SESSION_TTL", "a day")
	t.Setenv("LATCHKEY_STEP_UP_WINDOW", "-5m")
	_, err := accounts.ConfigFromEnv()
	require.ErrorContains(t, err, "LATCHKEY_SESSION_TTL")
	require.ErrorContains(t, err, "LATCHKEY_STEP_UP_WINDOW")
}

func TestValidate(t *testing.T) {
	cfg := accounts.Config{Namespace: "bad.ns", OperatorToken: "short", TrialPeriod: -1}
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
		DatabaseURL: testutil.DatabaseURL(t), NATSURL: "nats://127.0.0.1:1", Namespace: testutil.Namespace(t),
		OperatorToken: "0123456789abcdef", SessionTTL: time.Hour, StepUpWindow: time.Minute,
	}
	u, err := accounts.New(ctx, cfg, zap.NewNop())
	require.ErrorContains(t, err, "nats")
	require.Nil(t, u)
	// The migration ran before NATS was tried, and running it again applies nothing.
	applied, err := accounts.Migrate(ctx, cfg)
	require.NoError(t, err)
	require.Empty(t, applied)
}
