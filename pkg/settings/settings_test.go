package settings_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	. "github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// sample is a configuration as a service declares one.
type sample struct {
	Common
	Postgres
	KeysPeer
	Wait  time.Duration   `env:"SETTINGS_TEST_WAIT" envDefault:"5s"`
	Count int             `env:"SETTINGS_TEST_COUNT" envDefault:"3"`
	Size  int64           `env:"SETTINGS_TEST_SIZE" envDefault:"1024"`
	Rate  float64         `env:"SETTINGS_TEST_RATE" envDefault:"1.5"`
	On    bool            `env:"SETTINGS_TEST_ON"`
	Limit ratelimit.Limit `env:"SETTINGS_TEST_LIMIT" envDefault:"10/s:100"`
	Name  string          `env:"SETTINGS_TEST_NAME"`
}

func TestParse(t *testing.T) {
	defaults := sample{
		Common: Common{
			Namespace: "latchkey", NATSURL: "nats://127.0.0.1:4222", ShutdownGrace: 10 * time.Second,
			StreamReplicas: 1, StreamWait: time.Minute,
			Log: logging.Config{Level: zapcore.InfoLevel},
		},
		Postgres: Postgres{DatabaseURL: "postgres://postgres@127.0.0.1:5432/latchkey?sslmode=disable"},
		KeysPeer: KeysPeer{KeysAddr: "127.0.0.1:8082"},
		Wait:     5 * time.Second, Count: 3, Size: 1024, Rate: 1.5,
		Limit: ratelimit.Limit{PerSecond: 10, Burst: 100},
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want func(*sample)
	}{
		{"defaults", nil, func(*sample) {}},
		{"shared settings", map[string]string{
			"LATCHKEY_NAMESPACE": "staging", "LATCHKEY_OPERATOR_TOKEN": "0123456789abcdef",
			"NATS_URL": "nats://nats:4222", "LATCHKEY_SHUTDOWN_GRACE": "1m",
			"LATCHKEY_STREAM_REPLICAS": "3", "LATCHKEY_STREAM_WAIT": "2m",
			"LATCHKEY_LOG_LEVEL": "debug", "LATCHKEY_LOG_FORMAT": "console",
			"DATABASE_URL": "postgres://db/x", "KEYS_GRPC_ADDR": "keys:8082",
			"LATCHKEY_TLS_CERT_FILE": "/tls/tls.crt", "LATCHKEY_TLS_KEY_FILE": "/tls/tls.key", "LATCHKEY_TLS_CA_FILE": "/tls/ca.crt",
		}, func(s *sample) {
			s.Namespace, s.OperatorToken, s.NATSURL, s.ShutdownGrace = "staging", "0123456789abcdef", "nats://nats:4222", time.Minute
			s.StreamReplicas, s.StreamWait = 3, 2*time.Minute
			s.Log = logging.Config{Level: zapcore.DebugLevel, Format: logging.Console}
			s.DatabaseURL, s.KeysAddr = "postgres://db/x", "keys:8082"
			s.TLS = TLS{CertFile: "/tls/tls.crt", KeyFile: "/tls/tls.key", CAFile: "/tls/ca.crt"}
		}},
		{"own settings", map[string]string{
			"SETTINGS_TEST_WAIT": "250ms", "SETTINGS_TEST_COUNT": "0", "SETTINGS_TEST_SIZE": "8589934592",
			"SETTINGS_TEST_RATE": "2", "SETTINGS_TEST_ON": "true", "SETTINGS_TEST_LIMIT": "0.5/s:1",
			"SETTINGS_TEST_NAME": "n",
		}, func(s *sample) {
			s.Wait, s.Count, s.Size, s.Rate, s.On, s.Name = 250*time.Millisecond, 0, 8<<30, 2, true, "n"
			s.Limit = ratelimit.Limit{PerSecond: 0.5, Burst: 1}
		}},
		{"off is no limit", map[string]string{"SETTINGS_TEST_LIMIT": "off"}, func(s *sample) { s.Limit = ratelimit.Limit{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testutil.ClearSettings(t, &sample{})
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			want := defaults
			tc.want(&want)
			var got sample
			require.NoError(t, Parse(&got))
			require.Equal(t, want, got)
		})
	}
}

// Every bad value is reported at once, naming its variable, its value and what was wanted.
func TestParseReportsEveryBadValue(t *testing.T) {
	testutil.ClearSettings(t, &sample{})
	bad := map[string]string{
		"LATCHKEY_SHUTDOWN_GRACE": "-1s",
		"LATCHKEY_LOG_LEVEL":      "loud",
		"LATCHKEY_LOG_FORMAT":     "xml",
		"SETTINGS_TEST_WAIT":      "soon",
		"SETTINGS_TEST_COUNT":     "seven",
		"SETTINGS_TEST_SIZE":      "1.5",
		"SETTINGS_TEST_RATE":      "fast",
		"SETTINGS_TEST_ON":        "maybe",
		"SETTINGS_TEST_LIMIT":     "10:100",
	}
	for k, v := range bad {
		t.Setenv(k, v)
	}
	var s sample
	err := Parse(&s)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, len(bad), err.Error())
	for k, v := range bad {
		require.ErrorContains(t, err, k+`="`+v+`": `)
	}
	require.ErrorContains(t, err, "want a duration like 30s or 24h")
	require.ErrorContains(t, err, "want <rate>/s:<burst>")
	require.ErrorContains(t, err, "want json or console")
}

// TestParseShowsNoLongValue: a value that fails to parse is echoed only when it is short
// and one line; a pasted document, a private key say, is named by its length alone.
func TestParseShowsNoLongValue(t *testing.T) {
	testutil.ClearSettings(t, &sample{})
	pem := "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBsecretsecretsecretsecretsecretsecret\n-----END EC PRIVATE KEY-----\n"
	t.Setenv("SETTINGS_TEST_WAIT", pem)
	var s sample
	err := Parse(&s)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "PRIVATE KEY")
	require.NotContains(t, err.Error(), "secretsecret")
	require.ErrorContains(t, err, "SETTINGS_TEST_WAIT=("+strconv.Itoa(len(pem))+" bytes, not shown)")
}

// Limits are "<rate>/s:<burst>" or "off"; anything else is refused.
func TestParseLimit(t *testing.T) {
	testutil.ClearSettings(t, &sample{})
	for in, want := range map[string]ratelimit.Limit{
		"10/s:100": {PerSecond: 10, Burst: 100},
		"0.1/s:1":  {PerSecond: 0.1, Burst: 1},
		"off":      {},
	} {
		t.Setenv("SETTINGS_TEST_LIMIT", in)
		var s sample
		require.NoError(t, Parse(&s), in)
		require.Equal(t, want, s.Limit, in)
	}
	for _, in := range []string{"10", "10/s", "10:100", "10/m:100", "0/s:10", "-1/s:10", "NaN/s:10", "10/s:0", "10/s:x", "OFF"} {
		t.Setenv("SETTINGS_TEST_LIMIT", in)
		var s sample
		require.ErrorContains(t, Parse(&s), `SETTINGS_TEST_LIMIT="`+in+`": want <rate>/s:<burst>`, in)
	}
}

func TestValidate(t *testing.T) {
	ok := Common{Namespace: "latchkey", OperatorToken: strings.Repeat("t", auth.MinOperatorTokenLen), NATSURL: "nats://x"}
	require.NoError(t, ok.Validate())
	for _, n := range []Replicas{0, 1, 3, 5} {
		r := ok
		r.StreamReplicas = n
		require.NoError(t, r.Validate(), n)
	}
	for _, n := range []Replicas{6, -1} {
		r := ok
		r.StreamReplicas = n
		require.ErrorContains(t, r.Validate(), "LATCHKEY_STREAM_REPLICAS", n)
	}
	require.NoError(t, Postgres{DatabaseURL: "postgres://x"}.Validate())
	require.NoError(t, AccountsPeer{AccountsAddr: "a:1"}.Validate())
	require.NoError(t, KeysPeer{KeysAddr: "k:1"}.Validate())

	long := ok
	long.OperatorToken = strings.Repeat("t", auth.MaxTokenLen+1)
	require.ErrorContains(t, long.Validate(), "LATCHKEY_OPERATOR_TOKEN")

	secret := "short-secret"
	err := Common{Namespace: "a.b", OperatorToken: secret, ShutdownGrace: -time.Second, StreamReplicas: 6, StreamWait: -time.Second}.Validate()
	for _, want := range []string{"LATCHKEY_NAMESPACE", "LATCHKEY_OPERATOR_TOKEN", "NATS_URL", "LATCHKEY_SHUTDOWN_GRACE", "LATCHKEY_STREAM_REPLICAS", "LATCHKEY_STREAM_WAIT"} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), secret, "the operator token is never echoed")
	require.ErrorContains(t, Postgres{}.Validate(), "DATABASE_URL")
	require.ErrorContains(t, AccountsPeer{}.Validate(), "ACCOUNTS_GRPC_ADDR")
	require.ErrorContains(t, KeysPeer{}.Validate(), "KEYS_GRPC_ADDR")
}

func TestVars(t *testing.T) {
	vars, err := Vars(&sample{})
	require.NoError(t, err)
	byName := map[string]Var{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	require.Equal(t, Var{Name: "LATCHKEY_NAMESPACE", Default: "latchkey", HasDefault: true}, byName["LATCHKEY_NAMESPACE"])
	require.Equal(t, Var{Name: "LATCHKEY_OPERATOR_TOKEN"}, byName["LATCHKEY_OPERATOR_TOKEN"])
	require.Contains(t, byName, "LATCHKEY_LOG_FORMAT")
	require.Contains(t, byName, "SETTINGS_TEST_LIMIT")
	require.Contains(t, byName, "LATCHKEY_TLS_CA_FILE")
	require.Len(t, vars, 20)
}

// The TLS files go together: a certificate with its key, a CA only beside them; Load
// names the file it cannot use, and reads nothing when none is set.
func TestTLS(t *testing.T) {
	for _, c := range []struct {
		tls  TLS
		want string
	}{
		{TLS{CertFile: "/c"}, "LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE must be set together"},
		{TLS{KeyFile: "/k"}, "LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE must be set together"},
		{TLS{CAFile: "/ca"}, "LATCHKEY_TLS_CA_FILE needs LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE"},
	} {
		require.ErrorContains(t, c.tls.Validate(), c.want)
		require.ErrorContains(t, Common{Namespace: "x", OperatorToken: "0123456789abcdef", NATSURL: "nats://n", TLS: c.tls}.Validate(), c.want)
		_, err := c.tls.Load(nil)
		require.ErrorContains(t, err, c.want)
	}
	_, err := TLS{CertFile: "/nonexistent/tls.crt", KeyFile: "/nonexistent/tls.key"}.Load(nil)
	require.ErrorContains(t, err, "LATCHKEY_TLS_CERT_FILE, LATCHKEY_TLS_KEY_FILE, LATCHKEY_TLS_CA_FILE: certificate file: open /nonexistent/tls.crt")

	f, err := TLS{}.Load(nil)
	require.NoError(t, err)
	require.Nil(t, f, "plaintext")
	ca := testutil.NewCA(t, "test CA")
	i := ca.Issue("svc", "127.0.0.1")
	f, err = TLS{CertFile: i.CertFile, KeyFile: i.KeyFile, CAFile: ca.File}.Load(nil)
	require.NoError(t, err)
	require.True(t, f.Mutual())
}

// LATCHKEY_STREAM_REPLICAS is 1 to 5 (JetStream's most), said at parse time.
func TestParseStreamReplicas(t *testing.T) {
	testutil.ClearSettings(t, &sample{})
	for _, v := range []string{"0", "6", "-1", "three"} {
		t.Setenv("LATCHKEY_STREAM_REPLICAS", v)
		var s sample
		require.ErrorContains(t, Parse(&s), `LATCHKEY_STREAM_REPLICAS="`+v+`": want 1 to 5`)
	}
	t.Setenv("LATCHKEY_STREAM_REPLICAS", "5")
	var s sample
	require.NoError(t, Parse(&s))
	require.Equal(t, Replicas(5), s.StreamReplicas)
}

// TestDescribe: the variables a service cannot serve without are those its Validate names
// when every setting is at its default, read from no environment at all; an error that
// names no variable fails, so a required setting cannot hide.
func TestDescribe(t *testing.T) {
	t.Setenv("LATCHKEY_OPERATOR_TOKEN", strings.Repeat("t", auth.MinOperatorTokenLen)) // not read
	vars, err := Describe(func(s sample) error {
		errs := []error{s.Common.Validate(), s.Postgres.Validate(), s.KeysPeer.Validate()}
		if s.Name == "" {
			errs = append(errs, errors.New("SETTINGS_TEST_NAME is required"))
		}
		return errors.Join(errs...)
	})
	require.NoError(t, err)
	var required []string
	for _, v := range vars {
		if v.Required {
			required = append(required, v.Name)
		}
	}
	require.Equal(t, []string{"LATCHKEY_OPERATOR_TOKEN", "SETTINGS_TEST_NAME"}, required)
	require.Len(t, vars, 20)

	vars, err = Describe(func(sample) error { return nil })
	require.NoError(t, err)
	for _, v := range vars {
		require.False(t, v.Required, v.Name)
	}

	_, err = Describe(func(sample) error { return errors.Join(nil, errors.New("the thing must be set")) })
	require.ErrorContains(t, err, "the thing must be set")
	require.ErrorContains(t, err, "names none of its variables")
}
