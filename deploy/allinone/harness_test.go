package allinone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func startSuite(t testing.TB, options ...suiteOption) *suite {
	t.Helper()
	s := &suite{t: t, operator: "test-operator-" + testutil.Suffix(), ns: testutil.Namespace(t), natsURL: testutil.NATSURL(), dbURL: testutil.DatabaseURL(t)}
	// The services must know each other's gRPC addresses before they listen, so free ports
	// are picked first; another process may take one meanwhile, and then the start is tried
	// again on new ones.
	for attempt := 1; ; attempt++ {
		err := s.start(options)
		if err == nil {
			break
		}
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") {
			continue
		}
		t.Fatalf("suite did not start: %v", err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(s.api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "GET /healthz to answer 200")
	return s
}

// start starts the suite once; it returns the error of a start that failed.
func (s *suite) start(options []suiteOption) error {
	t := s.t
	accountsAddr, keysAddr := freeAddr(t), freeAddr(t)
	s.keysGRPC, s.accountsGRPC = keysAddr, accountsAddr
	ready := make(chan map[string]string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts := Options{
		HTTPAddr:      "127.0.0.1:0",
		DatabaseURL:   s.dbURL,
		NATSURL:       s.natsURL,
		OperatorToken: s.operator,
		Pepper:        "test-pepper-" + strings.Repeat("x", 40),
		OnListening:   func(addrs map[string]string, _ string) { ready <- addrs },
		Configure: func(a *accounts.Config, k *keys.Config, g *gateway.Config, au *audit.Config) {
			a.GRPCAddr, k.GRPCAddr = accountsAddr, keysAddr
			a.KeysAddr, k.AccountsAddr = keysAddr, accountsAddr
			a.Namespace, k.Namespace = s.ns, s.ns
			// Tests make many calls from one address; the limits have tests of their own.
			a.Limits, k.Limits = limits.Config{}, limits.Config{}
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
	log := s.log
	if log == nil {
		log = zap.NewNop()
	}
	go func() { done <- Run(ctx, opts, log) }()
	select {
	case addrs := <-ready:
		s.api = "http://" + addrs["rest"]
		s.ingest = "http://" + addrs["ingest-gateway http"]
		s.otlpGRPC = addrs["ingest-gateway grpc"]
	case err := <-done:
		cancel()
		return err
	case <-time.After(60 * time.Second):
		cancel()
		return errors.New("suite did not start within 60s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("suite did not stop within 20s")
		}
	})
	return nil
}

// reply is a decoded HTTP response.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(path string) string {
	v := r.get(path)
	s, _ := v.(string)
	return s
}

// get walks a dotted path through the JSON body ("key.id").
func (r reply) get(path string) any {
	var cur any = r.body
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// Short names for the services' configurations in test options.
type (
	accountsConfig = accounts.Config
	keysConfig     = keys.Config
	gatewayConfig  = gateway.Config
	auditConfig    = audit.Config
)

// call sends body (a string is sent verbatim, anything else as JSON) with a bearer token
// to the management API.
func (s *suite) call(method, path, token string, body any, headers ...string) reply {
	s.t.Helper()
	return s.send(method, s.api+path, token, body, headers...)
}

// send is call to any URL (the gateway's, say).
func (s *suite) send(method, url, token string, body any, headers ...string) reply {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(s.t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(s.t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// must asserts the status and returns the reply.
func (s *suite) must(status int, r reply) reply {
	s.t.Helper()
	require.Equalf(s.t, status, r.status, "body: %s", r.raw)
	return r
}

// requireError asserts an error envelope (docs/rest.md, "Error envelope") with the code.
func requireError(t testing.TB, r reply, status int, code string) {
	t.Helper()
	require.Equalf(t, status, r.status, "body: %s", r.raw)
	require.Equalf(t, code, r.str("error"), "body: %s", r.raw)
	require.NotEmpty(t, r.str("message"), r.raw)
	require.NotEmpty(t, r.str("request_id"), r.raw)
	require.Equal(t, r.str("request_id"), r.header.Get("X-Request-Id"))
	require.True(t, strings.HasSuffix(r.str("documentation_url"), "/errors/"+code), r.raw)
}

var userSeq int

// signUp makes an account and returns its session token and account id.
func (s *suite) signUp(name string) (token, accountID string) {
	s.t.Helper()
	userSeq++
	r := s.must(200, s.call("POST", "/v1/accounts", "", map[string]any{
		"email":        fmt.Sprintf("%s-%d-%s@example.com", name, userSeq, testutil.Suffix()),
		"password":     "Correct-Horse-Battery-9",
		"account_name": name,
	}))
	return r.str("session.token"), r.str("account.id")
}

// project makes a project with default environments and returns its id.
func (s *suite) project(token string, origins ...string) string {
	s.t.Helper()
	if origins == nil {
		origins = []string{}
	}
	r := s.must(200, s.call("POST", "/v1/projects", token, map[string]any{"name": "web-app", "allowed_origins": origins}))
	return r.str("project.id")
}

// ingestKey creates an ingest key in project/prd and returns (id, secret).
func (s *suite) ingestKey(token, project string) (string, string) {
	s.t.Helper()
	r := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "production-web",
	}))
	return r.str("key.id"), r.str("secret")
}

func (s *suite) verify(token, secret string, extra ...string) reply {
	s.t.Helper()
	body := map[string]any{"key": secret}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	return s.must(200, s.call("POST", "/v1/keys:verify", token, body))
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
