package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// resolved answers every lookup of its kind with fixed facts; the services' own resolvers
// are tested with the real services in deploy/allinone (TestOneAuthenticator).
type resolved struct {
	session *Session
	key     *Key
	err     error
}

func (r resolved) ResolveSession(context.Context, string) (*Session, error) { return r.session, r.err }
func (r resolved) ResolveKey(context.Context, string) (*Key, error)         { return r.key, r.err }

// TestDecisions: the order in which a resolved credential is judged, in one place.
func TestDecisions(t *testing.T) {
	const op = "operator-token-0123456789"
	session := "lks_" + strings.Repeat("S", 43)
	key := "lk_acct_0123456789"
	live := func(edit func(*Key)) *Key {
		k := &Key{ID: "key_1", AccountID: "acc_1", Capabilities: []string{"keys:read"}, Plan: "pro", Verdict: verdict.OK}
		if edit != nil {
			edit(k)
		}
		return k
	}
	cases := []struct {
		name  string
		r     resolved
		token string
		want  *Principal
		err   *apierr.Error
	}{
		{"operator", resolved{err: errors.New("no lookup")}, op, &Principal{Kind: KindOperator}, nil},
		{
			"session",
			resolved{session: &Session{AccountID: "acc_1", UserID: "usr_1", SessionID: "ses_1", Plan: "free"}},
			session,
			&Principal{Kind: KindUser, AccountID: "acc_1", UserID: "usr_1", SessionID: "ses_1", Plan: "free"}, nil,
		},
		{"unknown session", resolved{}, session, nil, ErrBadSession},
		{"suspended session", resolved{session: &Session{AccountID: "acc_1", Suspended: true}}, session, nil, ErrSuspended},
		{"session store down", resolved{err: errors.New("down")}, session, nil, ErrUnavailable},
		{
			"account key",
			resolved{key: live(nil)},
			key,
			&Principal{Kind: KindAccountKey, AccountID: "acc_1", KeyID: "key_1", Capabilities: []string{"keys:read"}, Plan: "pro"}, nil,
		},
		{"unknown key", resolved{}, key, nil, ErrBadToken},
		{"malformed key", resolved{key: live(func(k *Key) { k.Verdict = verdict.Malformed })}, key, nil, ErrBadToken},
		{"revoked key", resolved{key: live(func(k *Key) { k.Verdict = verdict.Revoked })}, key, nil, ErrBadToken},
		{"expired key", resolved{key: live(func(k *Key) { k.Verdict = verdict.Expired })}, key, nil, ErrBadToken},
		{"suspended account", resolved{key: live(func(k *Key) { k.Verdict = verdict.AccountSuspended })}, key, nil, ErrSuspended},
		{"project key", resolved{key: live(func(k *Key) { k.ProjectID = "prj_1" })}, key, nil, ErrProjectKey},
		{"collector key", resolved{key: live(func(k *Key) { k.ProjectID, k.ServerID = "prj_1", "srv_1" })}, key, nil, ErrCollectorKey},
		{"revoked collector key", resolved{key: live(func(k *Key) { k.ProjectID, k.ServerID, k.Verdict = "prj_1", "srv_1", verdict.Revoked })}, key, nil, ErrBadToken},
		{"browser-only key", resolved{key: live(func(k *Key) { k.ProjectID, k.Verdict = "prj_1", verdict.OriginNotAllowed })}, key, nil, ErrBrowserKey},
		{"expired browser-only key", resolved{key: live(func(k *Key) { k.ProjectID, k.Verdict = "prj_1", verdict.Expired })}, key, nil, ErrBadToken},
		{"revoked project key", resolved{key: live(func(k *Key) { k.ProjectID, k.Verdict = "prj_1", verdict.Revoked })}, key, nil, ErrBadToken},
		{"key store down", resolved{err: errors.New("down")}, key, nil, ErrUnavailable},
		{"too long", resolved{key: live(nil)}, strings.Repeat("k", MaxTokenLen+1), nil, ErrMalformed},
		{"operator token and more", resolved{}, op + "x", nil, ErrBadToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Authenticator{Operator: op, Sessions: c.r, Keys: c.r}
			p, err := a.Authenticate(context.Background(), c.token)
			if c.err != nil {
				require.Equal(t, c.err, err)
				require.Nil(t, p)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.want, p)
		})
	}
}

func TestNoResolvers(t *testing.T) {
	a := &Authenticator{}
	for tok, want := range map[string]*apierr.Error{"lks_" + strings.Repeat("S", 43): ErrBadSession, "lk_acct_x": ErrBadToken, "": ErrMalformed} {
		_, err := a.Authenticate(context.Background(), tok)
		require.Equal(t, want, err, "%q", tok)
	}
}

// TestCancellation: a caller that gave up is told so, not that credentials are unavailable.
func TestCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := &Authenticator{Keys: resolved{err: ctx.Err()}}
	_, err := a.Authenticate(ctx, "lk_acct_x")
	require.True(t, apierr.IsCode(err, apierr.Canceled), "%v", err)
}

// stream stands for the server transport stream of a call to method, which is how
// grpc.Method learns a call's method.
type stream struct{ method string }

func (s stream) Method() string             { return s.method }
func (stream) SetHeader(metadata.MD) error  { return nil }
func (stream) SendHeader(metadata.MD) error { return nil }
func (stream) SetTrailer(metadata.MD) error { return nil }
func inCall(method string) context.Context {
	return grpc.NewContextWithServerTransportStream(context.Background(), stream{method})
}

// TestProjectKeysFor: a live key bound to a project is a caller of the methods that take
// one, with its binding and type, and of no other; revoked, it is no caller of any.
func TestProjectKeysFor(t *testing.T) {
	const mint = "/latchkey.keys.v1.KeysService/CreateSessionKey"
	key := &Key{
		ID: "key_1", AccountID: "acc_1", ProjectID: "prj_1", Environment: "prd", Type: "ingest",
		Capabilities: []string{"ingest"}, Verdict: verdict.OK,
	}
	a := &Authenticator{Keys: resolved{key: key}, ProjectKeysFor: map[string]bool{mint: true}}
	p, err := a.Authenticate(inCall(mint), "lk_ing_x")
	require.NoError(t, err)
	require.Equal(t, &Principal{
		Kind: KindProjectKey, AccountID: "acc_1", KeyID: "key_1", ProjectID: "prj_1", Environment: "prd",
		KeyType: "ingest", Capabilities: []string{"ingest"},
	}, p)
	require.Equal(t, "key_1", p.Actor())

	for _, ctx := range []context.Context{inCall("/latchkey.keys.v1.KeysService/ListKeys"), context.Background()} {
		_, err = a.Authenticate(ctx, "lk_ing_x")
		require.Equal(t, ErrProjectKey, err)
	}
	revoked := *key
	revoked.Verdict = verdict.Revoked
	a.Keys = resolved{key: &revoked}
	_, err = a.Authenticate(inCall(mint), "lk_ing_x")
	require.Equal(t, ErrBadToken, err)

	// A collector key takes none of the calls a project key may make: 403 everywhere.
	collector := *key
	collector.ServerID = "srv_1"
	a.Keys = resolved{key: &collector}
	for _, ctx := range []context.Context{inCall(mint), inCall("/latchkey.keys.v1.KeysService/ListKeys"), context.Background()} {
		_, err = a.Authenticate(ctx, "lk_srv_x")
		require.Equal(t, ErrCollectorKey, err)
		require.True(t, apierr.IsCode(err, apierr.PermissionDenied))
	}
}

// TestRequireProjectKey: a project key passes RequireKind when asked for, and no other
// check: it manages nothing, whatever its capabilities.
func TestRequireProjectKey(t *testing.T) {
	ctx := With(context.Background(), &Principal{Kind: KindProjectKey, AccountID: "acc_1", KeyID: "key_1", Capabilities: []string{"ingest", "keys:read"}})
	for name, call := range map[string]func() (*Principal, error){
		"Require":         func() (*Principal, error) { return Require(ctx, "keys:read") },
		"RequireAny":      func() (*Principal, error) { return RequireAny(ctx) },
		"RequireUser":     func() (*Principal, error) { return RequireUser(ctx) },
		"RequireOperator": func() (*Principal, error) { return RequireOperator(ctx) },
	} {
		p, err := call()
		require.Nil(t, p, name)
		require.Error(t, err, name)
		if name == "Require" || name == "RequireAny" {
			require.Equal(t, ErrProjectKey, err, name)
		}
	}
	p, err := RequireKind(ctx, "a session or a project key", KindUser, KindProjectKey)
	require.NoError(t, err)
	require.Equal(t, "key_1", p.KeyID)

	// Another kind is told who may call; no credential is the refusal of none.
	acct := With(context.Background(), &Principal{Kind: KindAccountKey, AccountID: "acc_1", KeyID: "key_2"})
	_, err = RequireKind(acct, "a session or a project key", KindUser, KindProjectKey)
	require.True(t, apierr.IsCode(err, apierr.PermissionDenied), "%v", err)
	require.Contains(t, err.Error(), "not an account key")
	_, err = RequireKind(context.Background(), "a session", KindUser)
	require.True(t, apierr.IsCode(err, apierr.Unauthenticated), "%v", err)
	_, err = RequireKind(WithError(context.Background(), ErrBrowserKey), "a session", KindUser)
	require.Equal(t, ErrBrowserKey, err)
}
