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
	u := e.signUp("alice")
	e.setPlan(u.accountID, "pro")
	e.call(e.accounts.rest, "POST", "/v1/account/verify-password", u.token, map[string]any{"password": u.password}).ok(t)
	createKey := func(body map[string]any) (id, secret string) {
		t.Helper()
		b := e.call(e.keys.rest, "POST", "/v1/keys", u.token, body).ok(t)
		return str(b, "key", "id"), str(b, "secret")
	}
	readerID, reader := createKey(map[string]any{"type": "account", "name": "auditor", "capabilities": []string{"audit:read"}})
	_, keysOnly := createKey(map[string]any{"type": "account", "name": "ops", "capabilities": []string{"keys:read"}})
	project := e.call(e.accounts.rest, "POST", "/v1/projects", u.token, map[string]any{"name": "web"}).ok(t)
	_, ingest := createKey(map[string]any{"type": "ingest", "name": "sdk", "project_id": str(project, "project", "id"), "environment": "prd"})

	other := e.signUp("bob")
	for range 3 {
		require.True(t, e.appendEvent(event(u.accountID, time.Now())))
		require.True(t, e.appendEvent(event(other.accountID, time.Now())))
	}

	for _, tok := range []string{u.token, reader} {
		list := e.listAll(tok, "limit=2")
		require.Len(t, list, 3)
		for _, ev := range list {
			require.Equal(t, u.accountID, ev["account_id"])
		}
		ok, checked, bad := e.verify(tok)
		require.True(t, ok, bad)
		require.Equal(t, 3, checked)
	}
	e.get("/v1/audit/events", keysOnly).requireError(t, http.StatusForbidden, apierr.InsufficientCapability)
	e.get("/v1/audit/verify", keysOnly).requireError(t, http.StatusForbidden, apierr.InsufficientCapability)
	e.get("/v1/audit/events", ingest).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)

	e.call(e.keys.rest, "POST", "/v1/keys/"+readerID+":revoke", u.token, map[string]any{"reason": "test"}).ok(t)
	e.get("/v1/audit/events", reader).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)

	e.call(e.accounts.rest, "POST", "/v1/admin/accounts/"+u.accountID+":suspend", e.operator, map[string]any{"reason": "test"}).ok(t)
	e.get("/v1/audit/events", u.token).requireError(t, http.StatusForbidden, apierr.AccountSuspended)
	testutil.Eventually(t, 30*time.Second, func() bool {
		return e.get("/v1/audit/events", keysOnly).status == http.StatusForbidden &&
			e.get("/v1/audit/events", keysOnly).body["error"] == string(apierr.AccountSuspended)
	}, "the keys service to learn of the suspension")

	// Bob still reads his own; with accounts down, sessions cannot be checked: 503.
	require.Len(t, e.listAll(other.token, ""), 3)
	e.accounts.stop()
	e.get("/v1/audit/events", other.token).requireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
	e.keys.stop()
	e.get("/v1/audit/events", "lk_acct_whatever").requireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
}
