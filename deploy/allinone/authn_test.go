package allinone

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/keys"
)

// answer is what a caller sees of a refusal, or the status alone of a success.
type answer struct {
	Status  int
	Code    string
	Message string
}

func answerOf(r testutil.Reply) answer {
	return answer{Status: r.Status, Code: r.Str("error"), Message: r.Str("message")}
}

func refusal(status int, e *apierr.Error) answer {
	return answer{Status: status, Code: string(e.Code), Message: e.Message}
}

// TestOneAuthenticator presents every kind of bearer credential to each service's
// authenticator (accounts, keys, audit: each answers through its own composition of
// pkg/auth) and, for the bounds, to the ingest gateway, and requires the same answer, code
// and message, from each. A copy of the decision that drifts fails here.
func TestOneAuthenticator(t *testing.T) {
	s := startSuite(t)
	token, accountID := s.signUp("authn")
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	testutil.Eventually(t, 10*time.Second, func() bool {
		return s.Call("POST", "/v1/keys", token, map[string]any{"type": "account"}).Str("error") == "step_up_required"
	}, "the plan change to reach keys")
	s.Must(200, s.Call("POST", "/v1/account/verify-password", token, map[string]any{"password": "Correct-Horse-Battery-9"}))
	accountKey := func() (id, secret string) {
		r := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
			"type": "account", "capabilities": []string{"projects:read", "keys:read", "audit:read"},
		}))
		return r.Str("key.id"), r.Str("secret")
	}
	_, live := accountKey()
	revokedID, revoked := accountKey()
	s.Must(200, s.Call("POST", "/v1/keys/"+revokedID+":revoke", token, map[string]any{}))
	expiredID, expired := accountKey()
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `UPDATE keys.keys SET expires_at = now() - interval '1 second' WHERE id = $1`, expiredID)
	require.NoError(t, err)
	_, ingest := s.IngestKey(token, s.Project(token))
	collector := s.Must(200, s.Call("POST", "/v1/servers", token, map[string]any{"project_id": s.Project(token), "name": "authn"})).Str("server", "api_key")
	unknown, err := keyformat.Default().Generate("account")
	require.NoError(t, err)

	// Each service's route that needs an account-bound caller with a read capability, and
	// one the operator may call.
	type service struct {
		name     string
		call     func(tok string, headers ...string) testutil.Reply
		operator func() testutil.Reply
	}
	services := []service{
		{
			"accounts",
			func(tok string, h ...string) testutil.Reply { return s.Call("GET", "/v1/projects", tok, nil, h...) },
			func() testutil.Reply {
				return s.Call("POST", "/v1/admin/accounts/"+accountID+":setPlan", s.operator, map[string]any{"plan": "pro"})
			},
		},
		{
			"keys",
			func(tok string, h ...string) testutil.Reply { return s.Call("GET", "/v1/keys", tok, nil, h...) },
			func() testutil.Reply { return s.Call("GET", "/v1/key-types", s.operator, nil) },
		},
		{
			"audit",
			func(tok string, h ...string) testutil.Reply { return s.Call("GET", "/v1/audit/events", tok, nil, h...) },
			func() testutil.Reply { return s.Call("GET", "/v1/audit/events?account_id="+accountID, s.operator, nil) },
		},
	}
	// The gateway shares the extraction and the bounds.
	gateway := func(tok string) testutil.Reply {
		return s.Send("POST", s.ingest+"/ingest/logs", tok, map[string]any{"service": "x", "logs": []any{}})
	}

	ok := answer{Status: 200}
	cases := []struct {
		name    string
		token   string
		headers []string
		want    answer // the zero answer: whatever it is, the same from each service
		gateway answer // the zero answer: not asked
	}{
		{name: "session", token: token, want: ok},
		{name: "account key", token: live, want: ok},
		{name: "project (ingest) key", token: ingest, want: refusal(401, auth.ErrProjectKey)},
		{name: "collector key", token: collector, want: refusal(403, auth.ErrCollectorKey)},
		{name: "revoked account key", token: revoked, want: refusal(401, auth.ErrBadToken)},
		{name: "expired account key", token: expired, want: refusal(401, auth.ErrBadToken)},
		{name: "unknown well-formed key", token: unknown, want: refusal(401, auth.ErrBadToken)},
		{name: "key with a bad checksum", token: live[:len(live)-1] + flip(live[len(live)-1]), want: refusal(401, auth.ErrBadToken)},
		{name: "not a key", token: "not-a-key", want: refusal(401, auth.ErrBadToken)},
		{name: "wrong operator token", token: s.operator + "x", want: refusal(401, auth.ErrBadToken)},
		{name: "unknown session", token: auth.SessionTokenPrefix + strings.Repeat("A", 43), want: refusal(401, auth.ErrBadSession)},
		{name: "malformed session", token: auth.SessionTokenPrefix + "short", want: refusal(401, auth.ErrBadSession)},
		{name: "too long", token: strings.Repeat("k", auth.MaxTokenLen+1), want: refusal(401, auth.ErrMalformed), gateway: refusal(401, auth.ErrMalformed)},
		{name: "too long session", token: auth.SessionTokenPrefix + strings.Repeat("k", auth.MaxTokenLen), want: refusal(401, auth.ErrMalformed), gateway: refusal(401, auth.ErrMalformed)},
		{name: "longest allowed", token: strings.Repeat("k", auth.MaxTokenLen), want: refusal(401, auth.ErrBadToken)},
		{name: "space inside", token: "lk_acct_ab cd", want: refusal(401, auth.ErrMalformed), gateway: refusal(401, auth.ErrMalformed)},
		// The REST bridge drops a header that cannot be gRPC metadata, so the management
		// services see no credential at all; the gateway reads the header itself.
		{name: "non-ASCII", token: "lk_acct_\u00e9t\u00e9", gateway: refusal(401, auth.ErrMalformed)},
		{name: "empty Bearer", headers: []string{"Authorization", "Bearer "}},
		{name: "other scheme", headers: []string{"Authorization", "Basic Zm9vOmJhcg=="}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var first answer
			for i, svc := range services {
				r := svc.call(tc.token, tc.headers...)
				got := answerOf(r)
				if got.Status == 200 {
					got = answer{Status: 200}
				}
				if tc.want != (answer{}) {
					require.Equalf(t, tc.want, got, "%s: %s", svc.name, r.Raw)
				}
				if i == 0 {
					first = got
				}
				require.Equalf(t, first, got, "%s answers otherwise than %s", svc.name, services[0].name)
				if len(tc.token) >= 16 {
					require.NotContains(t, r.Raw, tc.token, "a credential is never echoed")
				}
			}
			if tc.gateway != (answer{}) {
				r := gateway(tc.token)
				require.Equalf(t, tc.gateway, answerOf(r), "gateway: %s", r.Raw)
			}
		})
	}
	t.Run("operator", func(t *testing.T) {
		for _, svc := range services {
			r := svc.operator()
			require.Equalf(t, 200, r.Status, "%s: %s", svc.name, r.Raw)
		}
	})

	// Suspended, the account's session and keys are refused alike by every service (the
	// keys service learns of it by the accounts event).
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":suspend", s.operator, map[string]any{"reason": "test"}))
	want := refusal(403, auth.ErrSuspended)
	for _, tok := range []string{token, live} {
		testutil.Eventually(t, 10*time.Second, func() bool {
			for _, svc := range services {
				if answerOf(svc.call(tok)) != want {
					return false
				}
			}
			return true
		}, "every service to refuse the suspended account's credential with account_suspended")
	}
	// A revoked key of a suspended account is still only not valid.
	for _, svc := range services {
		require.Equal(t, refusal(401, auth.ErrBadToken), answerOf(svc.call(revoked)), svc.name)
	}
}

// flip changes a key's last character to another of its alphabet, spoiling its checksum.
func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

// TestAuthenticatorUnavailable: when the service that resolves a kind of credential cannot
// be reached, every composition answers 503 unavailable, with the same message, and never
// 401: the credential may well be good. Each service runs on its own, with its links to
// the others pointing where nothing listens.
func TestAuthenticatorUnavailable(t *testing.T) {
	const nowhere = "127.0.0.1:1"
	dbURL, ns, op := testutil.DatabaseURL(t), testutil.Namespace(t), "test-operator-"+testutil.Suffix()

	acfg, err := accounts.ConfigFromEnv()
	require.NoError(t, err)
	acfg.GRPCAddr, acfg.DatabaseURL, acfg.NATSURL, acfg.Namespace = "127.0.0.1:0", dbURL, testutil.NATSURL(), ns
	acfg.OperatorToken, acfg.KeysAddr, acfg.Limits = op, nowhere, limits.Config{}
	accountsAPI := runAlone(t, func(ctx context.Context) (*server.Unit, error) { return accounts.New(ctx, acfg, zap.NewNop()) })

	kcfg, err := keys.ConfigFromEnv()
	require.NoError(t, err)
	kcfg.GRPCAddr, kcfg.DatabaseURL, kcfg.NATSURL, kcfg.Namespace = "127.0.0.1:0", dbURL, testutil.NATSURL(), ns
	kcfg.OperatorToken, kcfg.AccountsAddr, kcfg.Limits = op, nowhere, limits.Config{}
	kcfg.Pepper = "test-pepper-" + strings.Repeat("x", 40)
	keysAPI := runAlone(t, func(ctx context.Context) (*server.Unit, error) { return keys.New(ctx, kcfg, zap.NewNop()) })

	aucfg, err := audit.ConfigFromEnv()
	require.NoError(t, err)
	aucfg.GRPCAddr, aucfg.DatabaseURL, aucfg.NATSURL, aucfg.Namespace = "127.0.0.1:0", dbURL, testutil.NATSURL(), ns
	aucfg.OperatorToken, aucfg.AccountsAddr, aucfg.KeysAddr = op, nowhere, nowhere
	auditAPI := runAlone(t, func(ctx context.Context) (*server.Unit, error) { return audit.New(ctx, aucfg, zap.NewNop()) })

	s := testutil.NewClient(t, accountsAPI)
	session := s.SignUp("unavailable").Token
	key, err := keyformat.Default().Generate("account")
	require.NoError(t, err)

	want := refusal(503, auth.ErrUnavailable)
	for _, c := range []struct{ what, url, token string }{
		{"a session at keys", keysAPI + "/v1/keys", session},
		{"a session at audit", auditAPI + "/v1/audit/events", session},
		{"an account key at accounts", accountsAPI + "/v1/projects", key},
		{"an account key at audit", auditAPI + "/v1/audit/events", key},
	} {
		r := s.Send("GET", c.url, c.token, nil)
		require.Equalf(t, want, answerOf(r), "%s: %s", c.what, r.Raw)
		require.Equal(t, "1", r.Header.Get("Retry-After"), c.what)
	}
	// What a service resolves itself is still decided: an unknown key at keys is not valid.
	require.Equal(t, refusal(401, auth.ErrBadToken), answerOf(s.Send("GET", keysAPI+"/v1/keys", key, nil)))
}

// runAlone serves one unit on its own (gRPC and REST on free ports) until the test ends and
// returns its REST base URL.
func runAlone(t *testing.T, build func(context.Context) (*server.Unit, error)) string {
	t.Helper()
	addrs, _, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		u, err := build(ctx)
		if err != nil {
			return err
		}
		return server.Run(ctx, server.RunConfig{Logger: zap.NewNop(), HTTPAddr: "127.0.0.1:0", Grace: time.Second, OnListening: listening}, u)
	})
	require.NoError(t, err, "a service did not start")
	return "http://" + addrs["rest"]
}
