package allinone

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// withTLS gives every service a certificate of its own from ca, with ca as the CA: mutual
// TLS between the services.
func withTLS(ca *testutil.CA) suiteOption {
	files := func(name string) settings.TLS {
		i := ca.Issue(name, "127.0.0.1", "localhost")
		return settings.TLS{CertFile: i.CertFile, KeyFile: i.KeyFile, CAFile: ca.File}
	}
	return func(o *Options, s *suite) {
		s.ca = ca
		withConfig(func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
			a.TLS, k.TLS, g.TLS, au.TLS = files("accounts"), files("keys"), files("ingest-gateway"), files("audit")
		})(o, s)
	}
}

// healthOver calls gRPC health at addr with the client TLS configuration c.
func healthOver(addr string, c *tls.Config) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(c)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// The whole suite with mutual TLS between its services and to NATS (which verifies client
// certificates): keys asks accounts over mTLS about the session that makes a key, audit
// about the one that reads the log, the gateway asks keys (VerifyKey) and publishes to
// NATS; the public listeners serve clients without a
// certificate; the internal gRPC listeners refuse them, and another CA's.
func TestSuiteOverMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	natsCert := ca.Issue("nats", "127.0.0.1")
	n := testutil.StartNATS(t, "tls {", `  cert_file: "`+natsCert.CertFile+`"`, `  key_file: "`+natsCert.KeyFile+`"`,
		`  ca_file: "`+ca.File+`"`, "  verify: true", "}")
	s := startSuite(t, withNATS(n.URL), withTLS(ca))

	// REST over TLS without a client certificate: sign up, a project, a key (keys asks
	// accounts about the project over mTLS).
	token, _ := s.signUp("tls")
	_, secret := s.IngestKey(token, s.Project(token))
	require.Equal(t, true, s.Verify(token, secret).Get("valid"))

	// The gateway verifies it at keys (VerifyKey over mTLS) and publishes over NATS TLS.
	r := s.Send("POST", s.ingest+"/ingest/logs", secret, `{"service":"web","logs":[{"message":"over TLS"}]}`)
	require.Equalf(t, http.StatusOK, r.Status, "body: %s", r.Raw)

	// audit asks accounts who the session is (mTLS).
	s.Must(http.StatusOK, s.Call("GET", "/v1/audit/events?limit=1", token, nil))

	// OTLP/gRPC is public: TLS, no client certificate.
	noCert := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	require.NoError(t, healthOver(s.otlpGRPC, noCert))

	// The internal gRPC listeners demand a certificate of the CA.
	for _, addr := range []string{s.keysGRPC, s.accountsGRPC} {
		require.Error(t, healthOver(addr, noCert), addr)
		other := testutil.NewCA(t, "another CA").Issue("intruder").Certificate(t)
		require.Error(t, healthOver(addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{other}, MinVersion: tls.VersionTLS12}), addr)
		mine := ca.Issue("operator-tool").Certificate(t)
		require.NoError(t, healthOver(addr, &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{mine}, MinVersion: tls.VersionTLS12}), addr)
	}

	// Plaintext HTTP to a TLS listener is refused (400), never served.
	plain, err := http.Get("http://" + s.api[len("https://"):] + "/healthz")
	require.NoError(t, err)
	_ = plain.Body.Close()
	require.Equal(t, http.StatusBadRequest, plain.StatusCode)
}

// A service started with a file it cannot use stops with an error naming it, before it
// touches anything.
func TestBadTLSSettingsStopStart(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	a, b := ca.Issue("a", "127.0.0.1"), ca.Issue("b", "127.0.0.1")
	testutil.ClearSettings(t, &keys.Config{})
	common := func(c *settings.Common, tls settings.TLS) {
		c.Namespace, c.OperatorToken, c.NATSURL, c.TLS = testutil.Namespace(t), "0123456789abcdef0123", testutil.NATSURL(), tls
	}
	for name, c := range map[string]struct {
		tls  settings.TLS
		want string
	}{
		"certificate without key": {settings.TLS{CertFile: a.CertFile}, "LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE must be set together"},
		"CA alone":                {settings.TLS{CAFile: ca.File}, "LATCHKEY_TLS_CA_FILE needs LATCHKEY_TLS_CERT_FILE and LATCHKEY_TLS_KEY_FILE"},
		"missing CA file":         {settings.TLS{CertFile: a.CertFile, KeyFile: a.KeyFile, CAFile: "/nonexistent/ca.crt"}, "/nonexistent/ca.crt"},
		"key of another":          {settings.TLS{CertFile: a.CertFile, KeyFile: b.KeyFile}, "does not match"},
	} {
		t.Run(name, func(t *testing.T) {
			for svc, run := range map[string]func() error{
				"accounts": func() error {
					cfg, err := accounts.ConfigFromEnv()
					require.NoError(t, err)
					common(&cfg.Common, c.tls)
					_, err = accounts.New(context.Background(), cfg, zap.NewNop())
					return err
				},
				"ingest-gateway": func() error {
					cfg, err := gateway.ConfigFromEnv()
					require.NoError(t, err)
					common(&cfg.Common, c.tls)
					_, err = gateway.New(context.Background(), cfg, zap.NewNop())
					return err
				},
			} {
				err := run()
				require.ErrorContains(t, err, c.want, svc)
			}
		})
	}
}
