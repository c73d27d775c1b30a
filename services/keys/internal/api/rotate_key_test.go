package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

func TestRotationGraceAndExpiry(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("grace")
	project := s.Project(token)
	id, secret := s.IngestKey(token, project)

	r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{"grace_period_seconds": 0}))
	v := s.Verify(token, secret)
	require.Equal(t, "expired", v.Str("code"), "a zero grace ends the old key at once")
	require.Equal(t, "expired", v.Str("key.status"))
	s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}).RequireError(t, 409, "conflict")
	s.Call("POST", "/v1/keys/"+r.Str("key.id")+":rotate", token, map[string]any{"grace_period_seconds": -1}).RequireError(t, 400, "invalid_argument")

	// An expiry in the past is refused; one in the near future takes effect.
	s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339),
	}).RequireError(t, 400, "invalid_argument")
	soon := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano),
	}))
	require.Equal(t, "ok", s.Verify(token, soon.Str("secret")).Str("code"))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Verify(token, soon.Str("secret")).Str("code") == "expired"
	}, "the key to expire")
}

// TestFailedChangesSpendNoCap: caps are taken in the change's own transaction, so a change
// refused or failed after taking its cap leaves the cap unspent: account-key rotations
// refused by the account-keys cap spend no rotation, and deleting a project that does not
// exist spends no project change.
func TestFailedChangesSpendNoCap(t *testing.T) {
	s := startSuite(t, func(a *accounts.Config, k *keys.Config) {
		k.RotationsPerHour, k.AccountKeysPerHour = 2, 1
		a.ProjectChangesPerHour = 2
	})
	token, _, _ := s.proAccount("caps")
	for range 3 {
		s.Call("DELETE", "/v1/projects/prj_01j00000000000000000000000", token, nil).RequireError(t, 404, "not_found")
	}
	project := s.Project(token)
	s.Project(token)
	s.Call("POST", "/v1/projects", token, map[string]any{"name": "third"}).RequireError(t, 429, "rate_limited")

	acct := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).Str("key.id")
	for range 3 {
		s.Call("POST", "/v1/keys/"+acct+":rotate", token, map[string]any{}).RequireError(t, 429, "rate_limited")
	}
	id, _ := s.IngestKey(token, project)
	id = s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).Str("key.id")
	id = s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).Str("key.id")
	s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}).RequireError(t, 429, "rate_limited")
}

// TestHourlyCaps: rotations per account and hour are capped, with the hour's end as
// Retry-After.
func TestHourlyCaps(t *testing.T) {
	s := startSuite(t, func(a *accounts.Config, k *keys.Config) {
		k.RotationsPerHour = 2
		a.ProjectChangesPerHour = 2
	})
	token, _ := s.signUp("capped")
	project := s.Project(token)
	id, _ := s.IngestKey(token, project)
	for range 2 {
		id = s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).Str("key.id")
	}
	r := s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "second"}))
	s.Call("POST", "/v1/projects", token, map[string]any{"name": "third"}).RequireError(t, 429, "rate_limited")
}

// TestRotateServerBoundKeyNeedsServersManage: rotating a key bound to a server through
// POST /v1/keys/{id}:rotate (which moves the server to the successor and answers its
// secret) needs servers:manage besides keys:write: an account key holding keys:* only is
// 403 insufficient_capability naming it, and the server keeps its key, still active; one
// holding servers:manage too rotates it and the server follows. The keys-only key still
// rotates keys of no server.
func TestRotateServerBoundKeyNeedsServersManage(t *testing.T) {
	s := startSuite(t)
	token, _, _ := s.proAccount("rotate-binder")
	project := s.Project(token)
	made := s.createServer(token, project, "box")
	srv, keyID := made.Str("server", "id"), made.Str("server", "key_id")
	keysOnly := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write"}})).Str("secret")
	manager := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write", "servers:manage"}})).Str("secret")

	r := s.Call("POST", "/v1/keys/"+keyID+":rotate", keysOnly, map[string]any{})
	r.RequireError(t, 403, "insufficient_capability")
	require.Contains(t, r.Message(), `"servers:manage"`)
	require.Nil(t, r.Get("secret"))
	got := s.Must(200, s.Call("GET", "/v1/servers/"+srv, token, nil))
	require.Equal(t, keyID, got.Str("server", "key_id"))
	require.Equal(t, "active", s.Must(200, s.Call("GET", "/v1/keys/"+keyID, keysOnly, nil)).Str("key", "status"))

	k := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":rotate", manager, map[string]any{}))
	require.Equal(t, srv, k.Str("key", "server_id"))
	require.Equal(t, k.Str("key", "id"), s.Must(200, s.Call("GET", "/v1/servers/"+srv, token, nil)).Str("server", "key_id"))

	ingest, _ := s.IngestKey(token, project)
	s.Must(200, s.Call("POST", "/v1/keys/"+ingest+":rotate", keysOnly, map[string]any{}))
}
