package allinone

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// suite is the whole of Latchkey running in this test process against the local Postgres
// (a fresh database) and NATS (a namespace of its own).
type suite struct {
	// Client calls the management API (the REST listener of every service).
	*testutil.Client
	t        testing.TB
	api      string
	operator string
	ns       string
	natsURL  string
	keysGRPC string
	// accountsGRPC is the accounts service's gRPC address.
	accountsGRPC string
	// ingest is the gateway's HTTP base URL; otlpGRPC its OTLP/gRPC address.
	ingest   string
	otlpGRPC string
	// gatewayCfg is the suite gateway's configuration, for starting more like it.
	gatewayCfg gateway.Config
	// dbURL is the suite's database.
	dbURL string
	// log receives the services' logs; none when nil.
	log *zap.Logger
	// ca, when set, signed the services' certificates (withTLS): the suite's URLs are
	// https and its client trusts the CA.
	ca *testutil.CA
}

// suiteOption adjusts a suite before it starts.
type suiteOption func(o *Options, s *suite)

// withNATS runs the suite against a NATS server of the test's own.
func withNATS(url string) suiteOption {
	return func(o *Options, s *suite) { o.NATSURL, s.natsURL = url, url }
}

// withConfig adjusts the services' configurations after the defaults of startSuite.
func withConfig(fn func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config)) suiteOption {
	return func(o *Options, _ *suite) {
		base := o.Configure
		o.Configure = func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
			base(a, k, g, au)
			fn(a, k, g, au)
		}
	}
}

func startSuite(t testing.TB, options ...suiteOption) *suite {
	t.Helper()
	s := &suite{t: t, operator: "test-operator-" + testutil.Suffix(), ns: testutil.Namespace(t), natsURL: testutil.NATSURL(), dbURL: testutil.DatabaseURL(t)}
	// The services must know each other's gRPC addresses before they listen, so free ports
	// are picked first.
	testutil.RetryAddrInUse(t, func() error { return s.start(options) })
	s.WaitHealthy()
	return s
}

// start starts the suite once; it returns the error of a start that failed.
func (s *suite) start(options []suiteOption) error {
	t := s.t
	accountsAddr, keysAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	s.keysGRPC, s.accountsGRPC = keysAddr, accountsAddr
	// listening is testutil.Background's; OnListening is set before the options so that
	// one of them may wrap it (tokenlog_test.go does).
	var listening func(map[string]string)
	opts := Options{
		HTTPAddr:      "127.0.0.1:0",
		DatabaseURL:   s.dbURL,
		NATSURL:       s.natsURL,
		OperatorToken: s.operator,
		Pepper:        "test-pepper-" + strings.Repeat("x", 40),
		OnListening:   func(addrs map[string]string, _ string) { listening(addrs) },
		Configure: func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
			a.GRPCAddr, k.GRPCAddr = accountsAddr, keysAddr
			a.KeysAddr, k.AccountsAddr = keysAddr, accountsAddr
			a.Namespace, k.Namespace = s.ns, s.ns
			// Tests make many calls from one address; the limits have tests of their own.
			a.Limits, k.Limits, au.Limits = limits.Config{}, limits.Config{}, limits.Config{}
			a.ProjectChangesPerHour, k.RotationsPerHour, k.AccountKeysPerHour = 0, 0, 0
			k.UsageFlushInterval = 50 * time.Millisecond
			k.DirectoryTTL = time.Second
			a.ShutdownGrace, k.ShutdownGrace = time.Second, time.Second
			g.HTTPAddr, g.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
			g.ShutdownGrace = time.Second
			g.ID = "gw-main"
			au.GRPCAddr = "127.0.0.1:0"
			au.ShutdownGrace = time.Second
		},
	}
	for _, o := range options {
		o(&opts, s)
	}
	configure := opts.Configure
	opts.Configure = func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
		configure(a, k, g, au)
		s.gatewayCfg = *g
		s.gatewayCfg.KeysAddr, s.gatewayCfg.Namespace = k.GRPCAddr, k.Namespace
	}
	addrs, _, err := testutil.Background(t, func(ctx context.Context, l func(map[string]string)) error {
		listening = l
		log := s.log
		if log == nil {
			log = zap.NewNop()
		}
		return Run(ctx, opts, log)
	})
	if err != nil {
		return err
	}
	scheme := "http://"
	if s.ca != nil {
		scheme = "https://"
	}
	s.api = scheme + addrs["rest"]
	s.Client = testutil.NewClient(t, s.api)
	if s.ca != nil {
		s.HTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool, MinVersion: tls.VersionTLS12}}
	}
	s.ingest = scheme + addrs["ingest-gateway http"]
	s.otlpGRPC = addrs["ingest-gateway grpc"]
	return nil
}

// Short names for the services' configurations in test options.
type (
	accountsConfig = accounts.Config
	keysConfig     = keys.Config
	gatewayConfig  = gateway.Config
	auditConfig    = audit.Config
)

// signUp makes an account and returns its session token and account id.
func (s *suite) signUp(name string) (token, accountID string) {
	s.t.Helper()
	a := s.SignUp(name)
	return a.Token, a.AccountID
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
