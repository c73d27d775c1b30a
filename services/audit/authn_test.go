package audit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestCallers: sessions (through accounts) and account keys (through keys) reach the
// caller's account's log; a key needs audit:read; project keys, revoked keys and
// suspended accounts are refused; when accounts cannot be reached, the answer is 503.
func TestCallers(t *testing.T) {
	e := newEnv(t, withKeys())
	u := e.accounts.api.SignUp("alice")
	e.setPlan(u.AccountID, "pro")
	e.accounts.api.Call("POST", "/v1/account/verify-password", u.Token, map[string]any{"password": u.Password}).OK(t)
	createKey := func(body map[string]any) (id, secret string) {
		t.Helper()
		b := e.keys.api.Call("POST", "/v1/keys", u.Token, body).OK(t)
		return testutil.Str(b, "key", "id"), testutil.Str(b, "secret")
	}
	readerID, reader := createKey(map[string]any{"type": "account", "name": "auditor", "capabilities": []string{"audit:read"}})
	_, keysOnly := createKey(map[string]any{"type": "account", "name": "ops", "capabilities": []string{"keys:read"}})
	project := e.accounts.api.Call("POST", "/v1/projects", u.Token, map[string]any{"name": "web"}).OK(t)
	_, ingest := createKey(map[string]any{"type": "ingest", "name": "sdk", "project_id": testutil.Str(project, "project", "id"), "environment": "prd"})

	other := e.accounts.api.SignUp("bob")
	for range 3 {
		require.True(t, e.appendEvent(event(u.AccountID, time.Now())))
		require.True(t, e.appendEvent(event(other.AccountID, time.Now())))
	}

	for _, tok := range []string{u.Token, reader} {
		list := e.listAll(tok, "limit=2")
		require.Len(t, list, 3)
		for _, ev := range list {
			require.Equal(t, u.AccountID, ev["account_id"])
		}
		ok, checked, bad := e.verify(tok)
		require.True(t, ok, bad)
		require.Equal(t, 3, checked)
	}
	e.get("/v1/audit/events", keysOnly).RequireError(t, http.StatusForbidden, apierr.InsufficientCapability)
	e.get("/v1/audit/verify", keysOnly).RequireError(t, http.StatusForbidden, apierr.InsufficientCapability)
	e.get("/v1/audit/events", ingest).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)

	e.keys.api.Call("POST", "/v1/keys/"+readerID+":revoke", u.Token, map[string]any{"reason": "test"}).OK(t)
	e.get("/v1/audit/events", reader).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)

	e.accounts.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":suspend", e.operator, map[string]any{"reason": "test"}).OK(t)
	e.get("/v1/audit/events", u.Token).RequireError(t, http.StatusForbidden, apierr.AccountSuspended)
	testutil.Eventually(t, 30*time.Second, func() bool {
		return e.get("/v1/audit/events", keysOnly).Status == http.StatusForbidden &&
			e.get("/v1/audit/events", keysOnly).Body["error"] == string(apierr.AccountSuspended)
	}, "the keys service to learn of the suspension")

	// Bob still reads his own; with accounts down, sessions cannot be checked: 503.
	require.Len(t, e.listAll(other.Token, ""), 3)
	e.accounts.stop()
	e.get("/v1/audit/events", other.Token).RequireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
	e.keys.stop()
	e.get("/v1/audit/events", "lk_acct_whatever").RequireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
}
