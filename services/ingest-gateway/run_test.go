package gateway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
)

func TestConfigFromEnv(t *testing.T) {
	defaults := gateway.Config{
		Common: settings.Common{
			Namespace:      "latchkey",
			NATSURL:        "nats://127.0.0.1:4222",
			StreamReplicas: 1,
			StreamWait:     time.Minute,
			ShutdownGrace:  10 * time.Second,
		},
		KeysPeer:            settings.KeysPeer{KeysAddr: "127.0.0.1:8082"},
		HTTPAddr:            "127.0.0.1:4318",
		GRPCAddr:            "127.0.0.1:4317",
		MaxStaleness:        30 * time.Second,
		NegativeTTL:         2 * time.Second,
		MaxBodyBytes:        4 << 20,
		PublishTimeout:      2 * time.Second,
		Retention:           72 * time.Hour,
		AnonRetention:       48 * time.Hour,
		FailedAuthPerSecond: 10,
		FailedAuthBurst:     50,
	}
	testutil.RequireEnvCases(t, gateway.ConfigFromEnv, defaults,
		testutil.EnvCase[gateway.Config]{Name: "defaults"},
		testutil.EnvCase[gateway.Config]{Name: "every variable", Env: map[string]string{
			"GATEWAY_HTTP_ADDR": "0.0.0.0:4318", "GATEWAY_GRPC_ADDR": "0.0.0.0:4317", "GATEWAY_ID": "gw-1",
			"KEYS_GRPC_ADDR": "keys:8082", "NATS_URL": "nats://nats:4222", "LATCHKEY_NAMESPACE": "prod",
			"LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef", "GATEWAY_MAX_STALENESS": "10s", "GATEWAY_NEGATIVE_TTL": "500ms",
			"GATEWAY_MAX_BODY_BYTES": "1048576", "GATEWAY_PUBLISH_TIMEOUT": "5s", "GATEWAY_MERGE_CLIENT_REQUEST_IDS": "true",
			"GATEWAY_RETENTION": "24h", "GATEWAY_ANON_RETENTION": "1h", "GATEWAY_FAILED_AUTH_PER_SECOND": "2.5",
			"GATEWAY_FAILED_AUTH_BURST": "5", "LATCHKEY_SHUTDOWN_GRACE": "3s", "LATCHKEY_LOG_LEVEL": "warn",
			"LATCHKEY_LOG_FORMAT": "console",
		}, Want: func(c *gateway.Config) {
			c.HTTPAddr, c.GRPCAddr, c.ID, c.KeysAddr, c.NATSURL = "0.0.0.0:4318", "0.0.0.0:4317", "gw-1", "keys:8082", "nats://nats:4222"
			c.Namespace, c.OperatorToken = "prod", "0123456789abcdef"
			c.MaxStaleness, c.NegativeTTL, c.MaxBodyBytes, c.PublishTimeout = 10*time.Second, 500*time.Millisecond, 1<<20, 5*time.Second
			c.MergeClientRequestIDs, c.Retention, c.AnonRetention = true, 24*time.Hour, time.Hour
			c.FailedAuthPerSecond, c.FailedAuthBurst, c.ShutdownGrace = 2.5, 5, 3*time.Second
			c.Log = logging.Config{Level: zapcore.WarnLevel, Format: logging.Console}
		}},
	)
}

// Every value that does not parse is reported at once, by variable.
func TestConfigFromEnvBadValues(t *testing.T) {
	testutil.RequireBadValuesNamed(t, gateway.ConfigFromEnv, map[string]string{
		"GATEWAY_MAX_STALENESS":            "-30s",
		"GATEWAY_MAX_BODY_BYTES":           "4MB",
		"GATEWAY_MERGE_CLIENT_REQUEST_IDS": "yes please",
		"GATEWAY_FAILED_AUTH_PER_SECOND":   "ten",
		"GATEWAY_FAILED_AUTH_BURST":        "5.5",
		"LATCHKEY_LOG_FORMAT":              "text",
	})
}

func TestValidate(t *testing.T) {
	err := gateway.Config{Common: settings.Common{Namespace: "a>b", OperatorToken: "short-secret", ShutdownGrace: -1}}.Validate()
	for _, want := range []string{
		"NATS_URL", "LATCHKEY_NAMESPACE", "LATCHKEY_OPERATOR_TOKEN", "LATCHKEY_SHUTDOWN_GRACE", "KEYS_GRPC_ADDR",
		"GATEWAY_MAX_STALENESS", "GATEWAY_MAX_BODY_BYTES", "GATEWAY_FAILED_AUTH_PER_SECOND",
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "short-secret", "the operator token is never echoed")

	// The bounds are the same as every other service's: a token over 512 characters (which
	// no bearer check would read) and a namespace that cannot name a subject are refused.
	ok := gateway.Config{
		Common:       settings.Common{Namespace: "prod", OperatorToken: strings.Repeat("t", 16), NATSURL: "nats://x"},
		KeysPeer:     settings.KeysPeer{KeysAddr: "keys:8082"},
		MaxStaleness: time.Second, NegativeTTL: time.Second, PublishTimeout: time.Second,
		MaxBodyBytes: 4096, FailedAuthPerSecond: 1, FailedAuthBurst: 1,
	}
	require.NoError(t, ok.Validate())
	long := ok
	long.OperatorToken = strings.Repeat("t", auth.MaxTokenLen+1)
	require.ErrorContains(t, long.Validate(), "LATCHKEY_OPERATOR_TOKEN")
	wild := ok
	wild.Namespace = "a>b"
	require.ErrorContains(t, wild.Validate(), "LATCHKEY_NAMESPACE")
}
