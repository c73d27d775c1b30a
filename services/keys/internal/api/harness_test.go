package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

// suite is the keys service and the accounts service it asks about callers, accounts and
// projects, running in this test process against the local Postgres (a fresh database)
// and NATS (a namespace of their own), behind one REST listener as `make run` serves them.
type suite struct {
	// Client calls the REST API of both services.
	*testutil.Client
	t        testing.TB
	operator string
	ns       string
	natsURL  string
	dbURL    string
	// keysGRPC is the keys service's gRPC address.
	keysGRPC string
	// stop stops both services and waits until they have (also done when the test ends).
	stop func()
}

// startSuite starts accounts and keys, stopped when the test ends. configure, if given,
// adjusts their configurations after the test defaults (no rate limits or hourly caps,
// a one-second directory cache, usage written every 50ms).
func startSuite(t testing.TB, configure ...func(a *accounts.Config, k *keys.Config)) *suite {
	t.Helper()
	s := &suite{
		t: t, operator: "test-operator-" + testutil.Suffix(), ns: testutil.Namespace(t),
		natsURL: testutil.NATSURL(), dbURL: testutil.DatabaseURL(t),
	}
	// Each service must know the other's gRPC address before it listens.
	testutil.RetryAddrInUse(t, func() error { return s.start(configure) })
	s.WaitHealthy()
	return s
}

// start starts both services once; it returns the error of a start that failed.
func (s *suite) start(configure []func(a *accounts.Config, k *keys.Config)) error {
	t := s.t
	acfg, err := accounts.ConfigFromEnv()
	require.NoError(t, err)
	kcfg, err := keys.ConfigFromEnv()
	require.NoError(t, err)
	acfg.GRPCAddr, kcfg.GRPCAddr = testutil.FreeAddr(t), testutil.FreeAddr(t)
	acfg.KeysAddr, kcfg.AccountsAddr = kcfg.GRPCAddr, acfg.GRPCAddr
	acfg.HTTPAddr, kcfg.HTTPAddr = "", ""
	acfg.DatabaseURL, kcfg.DatabaseURL = s.dbURL, s.dbURL
	acfg.NATSURL, kcfg.NATSURL = s.natsURL, s.natsURL
	acfg.Namespace, kcfg.Namespace = s.ns, s.ns
	acfg.OperatorToken, kcfg.OperatorToken = s.operator, s.operator
	kcfg.Pepper = "test-pepper-" + strings.Repeat("x", 40)
	// Tests make many calls from one address; the limits have tests of their own.
	acfg.Limits, kcfg.Limits = limits.Config{}, limits.Config{}
	kcfg.AnonymousLimit = ratelimit.Limit{}
	acfg.ProjectChangesPerHour, kcfg.RotationsPerHour, kcfg.AccountKeysPerHour = 0, 0, 0
	kcfg.UsageFlushInterval = 50 * time.Millisecond
	kcfg.DirectoryTTL = time.Second
	acfg.ShutdownGrace, kcfg.ShutdownGrace = time.Second, time.Second
	for _, c := range configure {
		c(&acfg, &kcfg)
	}
	s.keysGRPC = kcfg.GRPCAddr

	log := zap.NewNop()
	addrs, stop, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		au, err := accounts.New(ctx, acfg, log)
		if err != nil {
			return err
		}
		ku, err := keys.New(ctx, kcfg, log)
		if err != nil {
			au.Close()
			return err
		}
		return server.Run(ctx, server.RunConfig{Logger: log, HTTPAddr: "127.0.0.1:0", Grace: time.Second, OnListening: listening}, au, ku)
	})
	if err != nil {
		return err
	}
	s.stop = stop
	s.Client = testutil.NewClient(t, "http://"+addrs["rest"])
	return nil
}

// signUp makes an account and returns its session token and account id.
func (s *suite) signUp(name string) (token, accountID string) {
	s.t.Helper()
	a := s.SignUp(name)
	return a.Token, a.AccountID
}

// proAccount signs up an account on the pro plan (account keys need it) and returns a
// session that has just re-verified its password, the account id and a second session of
// the same user that has not.
func (s *suite) proAccount(name string) (steppedUp, accountID, plain string) {
	s.t.Helper()
	a := s.SignUp(name)
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+a.AccountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.Must(200, s.Call("POST", "/v1/account/verify-password", a.Token, map[string]any{"password": a.Password}))
	return a.Token, a.AccountID, s.Login(a.Email, a.Password)
}
