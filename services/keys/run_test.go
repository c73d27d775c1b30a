package keys_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys"
)

func TestConfigFromEnv(t *testing.T) {
	defaults := keys.Config{
		Common: settings.Common{
			Namespace:      "latchkey",
			NATSURL:        "nats://127.0.0.1:4222",
			StreamReplicas: 1,
			StreamWait:     time.Minute,
			ShutdownGrace:  10 * time.Second,
		},
		Postgres:           settings.Postgres{DatabaseURL: "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"},
		AccountsPeer:       settings.AccountsPeer{AccountsAddr: "127.0.0.1:8081"},
		GRPCAddr:           "127.0.0.1:8082",
		HTTPAddr:           "127.0.0.1:8092",
		KeyProfile:         "default",
		DirectoryTTL:       30 * time.Second,
		UsageFlushInterval: 5 * time.Second,
		Limits: limits.Config{
			PerIP:      ratelimit.Limit{PerSecond: 10, Burst: 100},
			PerKey:     ratelimit.Limit{PerSecond: 100, Burst: 1000},
			PerAccount: ratelimit.Limit{PerSecond: 500, Burst: 5000},
		},
		AnonymousLimit:         ratelimit.Limit{PerSecond: 1, Burst: 10},
		RotationsPerHour:       10,
		AccountKeysPerHour:     10,
		ServerCreatesPerHour:   100,
		ServerDeletesPerHour:   100,
		ServerRotationsPerHour: 10,
	}
	pepper := strings.Repeat("p", 32)
	scanningKeys := scanningKeysJSON(t)
	testutil.RequireEnvCases(t, keys.ConfigFromEnv, defaults,
		testutil.EnvCase[keys.Config]{Name: "defaults"},
		testutil.EnvCase[keys.Config]{Name: "every variable", Env: map[string]string{
			"KEYS_GRPC_ADDR": "0.0.0.0:9082", "KEYS_HTTP_ADDR": "0.0.0.0:9092", "DATABASE_URL": "postgres://db/prod",
			"NATS_URL": "nats://nats:4222", "LATCHKEY_NAMESPACE": "prod", "LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef",
			"ACCOUNTS_GRPC_ADDR": "accounts:8081", "LATCHKEY_PEPPER": pepper, "LATCHKEY_KEY_PROFILE": "typed",
			"LATCHKEY_DIRECTORY_TTL": "1m", "LATCHKEY_USAGE_FLUSH_INTERVAL": "250ms",
			"LATCHKEY_LIMIT_IP": "off", "LATCHKEY_LIMIT_KEY": "3/s:4", "LATCHKEY_LIMIT_ACCOUNT": "off",
			"LATCHKEY_LIMIT_ANONYMOUS":        "2/s:5",
			"LATCHKEY_CAP_ROTATIONS_PER_HOUR": "0", "LATCHKEY_CAP_ACCOUNT_KEYS_PER_HOUR": "2",
			"LATCHKEY_CAP_SERVER_CREATES_PER_HOUR": "5", "LATCHKEY_CAP_SERVER_DELETES_PER_HOUR": "0", "LATCHKEY_CAP_SERVER_ROTATIONS_PER_HOUR": "3",
			"LATCHKEY_SHUTDOWN_GRACE": "1s", "LATCHKEY_LOG_LEVEL": "debug", "LATCHKEY_LOG_FORMAT": "json",
			"LATCHKEY_SCANNING_PUBLIC_KEYS": scanningKeys,
		}, Want: func(c *keys.Config) {
			require.NoError(t, c.ScanningPublicKeys.UnmarshalText([]byte(scanningKeys)))
			c.GRPCAddr, c.HTTPAddr, c.DatabaseURL, c.NATSURL = "0.0.0.0:9082", "0.0.0.0:9092", "postgres://db/prod", "nats://nats:4222"
			c.Namespace, c.OperatorToken, c.AccountsAddr = "prod", "0123456789abcdef", "accounts:8081"
			c.Pepper, c.KeyProfile, c.DirectoryTTL, c.UsageFlushInterval = pepper, "typed", time.Minute, 250*time.Millisecond
			c.Limits = limits.Config{PerKey: ratelimit.Limit{PerSecond: 3, Burst: 4}}
			c.AnonymousLimit = ratelimit.Limit{PerSecond: 2, Burst: 5}
			c.RotationsPerHour, c.AccountKeysPerHour, c.ShutdownGrace = 0, 2, time.Second
			c.ServerCreatesPerHour, c.ServerDeletesPerHour, c.ServerRotationsPerHour = 5, 0, 3
			c.Log = logging.Config{Level: zapcore.DebugLevel, Format: logging.JSON}
		}},
	)
}

// Every value that does not parse is reported at once, by variable.
func TestConfigFromEnvBadValues(t *testing.T) {
	testutil.RequireBadValuesNamed(t, keys.ConfigFromEnv, map[string]string{
		"LATCHKEY_DIRECTORY_TTL":                 "forever",
		"LATCHKEY_USAGE_FLUSH_INTERVAL":          "-5s",
		"LATCHKEY_LIMIT_KEY":                     "100/s",
		"LATCHKEY_LIMIT_ANONYMOUS":               "1/s",
		"LATCHKEY_CAP_ROTATIONS_PER_HOUR":        "ten",
		"LATCHKEY_CAP_ACCOUNT_KEYS_PER_HOUR":     "1.5",
		"LATCHKEY_CAP_SERVER_CREATES_PER_HOUR":   "many",
		"LATCHKEY_CAP_SERVER_ROTATIONS_PER_HOUR": "1e3",
		"LATCHKEY_SHUTDOWN_GRACE":                "1 minute",
		"LATCHKEY_SCANNING_PUBLIC_KEYS":          `[{"key_identifier": "k1", "key": "not a PEM key"}]`,
	})
}

func TestValidate(t *testing.T) {
	err := keys.Config{
		Common:     settings.Common{Namespace: "a b", OperatorToken: "short-secret"},
		Pepper:     "too-short",
		KeyProfile: "no-such-profile",
	}.Validate()
	for _, want := range []string{
		"DATABASE_URL", "NATS_URL", "LATCHKEY_NAMESPACE", "LATCHKEY_OPERATOR_TOKEN", "ACCOUNTS_GRPC_ADDR",
		"LATCHKEY_PEPPER", "LATCHKEY_KEY_PROFILE", "LATCHKEY_DIRECTORY_TTL",
	} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "short-secret", "the operator token is never echoed")
	require.NotContains(t, err.Error(), "too-short", "the pepper is never echoed")

	// The bounds are the same as every other service's: a token over 512 characters (which
	// no bearer check would read) and a namespace that cannot name a subject are refused.
	ok := keys.Config{
		Common:       settings.Common{Namespace: "prod", OperatorToken: strings.Repeat("t", 16), NATSURL: "nats://x"},
		Postgres:     settings.Postgres{DatabaseURL: "postgres://x"},
		AccountsPeer: settings.AccountsPeer{AccountsAddr: "accounts:8081"},
		Pepper:       strings.Repeat("p", 32), DirectoryTTL: time.Second, UsageFlushInterval: time.Second,
	}
	require.NoError(t, ok.Validate())
	long := ok
	long.OperatorToken = strings.Repeat("t", auth.MaxTokenLen+1)
	require.ErrorContains(t, long.Validate(), "LATCHKEY_OPERATOR_TOKEN")
	dotted := ok
	dotted.Namespace = "a.b"
	require.ErrorContains(t, dotted.Validate(), "LATCHKEY_NAMESPACE")
}

// scanningKeysJSON is a LATCHKEY_SCANNING_PUBLIC_KEYS value naming one fresh key.
func scanningKeysJSON(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	require.NoError(t, err)
	v, err := json.Marshal([]map[string]string{{"key_identifier": "k1", "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}})
	require.NoError(t, err)
	return string(v)
}

// TestNewWithoutStreams: when JetStream cannot make the service's streams (here: three
// replicas asked of a single nats-server, as on a cluster still forming), New waits
// LATCHKEY_STREAM_WAIT and returns an error naming the setting; it used to panic on its
// way out (issue 11, fault b).
func TestNewWithoutStreams(t *testing.T) {
	cfg := keys.Config{
		Common: settings.Common{
			Namespace: testutil.Namespace(t), OperatorToken: strings.Repeat("t", 16), NATSURL: testutil.NATSURL(),
			StreamReplicas: 3, StreamWait: time.Second,
		},
		Postgres:     settings.Postgres{DatabaseURL: testutil.DatabaseURL(t)},
		AccountsPeer: settings.AccountsPeer{AccountsAddr: "127.0.0.1:1"},
		Pepper:       strings.Repeat("p", 32), KeyProfile: "default", DirectoryTTL: time.Second, UsageFlushInterval: time.Second,
	}
	var u any
	var err error
	require.NotPanics(t, func() { u, err = keys.New(t.Context(), cfg, zap.NewNop()) })
	require.ErrorContains(t, err, "LATCHKEY_STREAM_WAIT")
	require.ErrorContains(t, err, "LATCHKEY_STREAM_REPLICAS")
	require.Nil(t, u)
}
