package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestUpdateKey(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("updater")
	project := s.Project(token)
	id, secret := s.IngestKey(token, project)

	r := s.Must(200, s.Call("PATCH", "/v1/keys/"+id, token, map[string]any{"name": "renamed", "metadata": map[string]string{"a": "b"}}))
	require.Equal(t, "renamed", r.Str("key.name"))
	require.Equal(t, "b", r.Str("key.metadata.a"))
	require.Equal(t, "prd", r.Str("key.environment"), "fields not sent stay as they were")
	s.Call("PATCH", "/v1/keys/"+id, token, map[string]any{"capabilities": []string{"keys:write"}}).RequireError(t, 400, "invalid_argument")
	s.Call("PATCH", "/v1/keys/"+id, token, map[string]any{"environment": "dev"}).RequireError(t, 400, "invalid_argument")
	s.Call("PATCH", "/v1/keys/"+id, token, map[string]any{}).RequireError(t, 400, "invalid_argument")
	exp := time.Now().Add(-time.Minute).Format(time.RFC3339)
	s.Call("PATCH", "/v1/keys/"+id, token, map[string]any{"expires_at": exp}).RequireError(t, 400, "invalid_argument")
	require.Equal(t, "ok", s.Verify(token, secret).Str("code"))
}

// TestNoUpdateRevivesAKey: a key that can no longer be used (expired, revoked, past its
// rotation grace) keeps its expiry and capabilities whatever PATCH sends, and widening an
// account key's life or rights takes a stepped-up session, never an account key.
func TestNoUpdateRevivesAKey(t *testing.T) {
	s := startSuite(t)
	token, _, plain := s.proAccount("revive")
	project := s.Project(token)
	later := time.Now().Add(time.Hour).Format(time.RFC3339)
	patch := func(id, tok string, body map[string]any, query ...string) testutil.Reply {
		return s.Call("PATCH", "/v1/keys/"+id+strings.Join(query, ""), tok, body)
	}

	soon := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano),
	}))
	expired, expiredSecret := soon.Str("key.id"), soon.Str("secret")
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Verify(token, expiredSecret).Str("code") == "expired" }, "the key to expire")
	// Each with an expiry, so that removing it would be a change.
	withExpiry := func() (string, string) {
		r := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
			"type": "ingest", "project_id": project, "environment": "dev", "expires_at": later,
		}))
		return r.Str("key.id"), r.Str("secret")
	}
	revoked, revokedSecret := withExpiry()
	s.Must(200, s.Call("POST", "/v1/keys/"+revoked+":revoke", token, map[string]any{}))
	rotated, rotatedSecret := withExpiry()
	s.Must(200, s.Call("POST", "/v1/keys/"+rotated+":rotate", token, map[string]any{"grace_period_seconds": 0}))
	dead := map[string]string{expired: expiredSecret, revoked: revokedSecret, rotated: rotatedSecret}
	for id, secret := range dead {
		patch(id, token, map[string]any{"expires_at": time.Now().Add(2 * time.Hour).Format(time.RFC3339)}).RequireError(t, 409, "conflict")
		patch(id, token, map[string]any{}, "?update_mask=expires_at").RequireError(t, 409, "conflict")
		patch(id, token, map[string]any{"capabilities": []string{"ingest"}, "expires_at": time.Now().Add(30 * time.Minute).Format(time.RFC3339)}).RequireError(t, 409, "conflict")
		require.NotEqual(t, "ok", s.Verify(token, secret).Str("code"), id)
		// Renaming is bookkeeping, not revival.
		s.Must(200, patch(id, token, map[string]any{"name": "retired"}))
	}

	// Account keys: a later or removed expiry or more capabilities need a stepped-up
	// session; another account key (or the key itself) never may.
	admin := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "account", "capabilities": []string{"keys:read", "keys:write"}, "expires_at": later,
	}))
	adminKey, adminID := admin.Str("secret"), admin.Str("key.id")
	narrow := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "account", "capabilities": []string{"keys:read"}, "expires_at": later,
	}))
	narrowID := narrow.Str("key.id")
	muchLater := time.Now().Add(48 * time.Hour).Format(time.RFC3339)
	widen := []struct {
		body  map[string]any
		query string
	}{
		{map[string]any{"expires_at": muchLater}, ""},
		{map[string]any{}, "?update_mask=expires_at"},
		{map[string]any{"capabilities": []string{"keys:read", "audit:read"}}, ""},
	}
	for _, w := range widen {
		patch(narrowID, adminKey, w.body, w.query).RequireError(t, 403, "permission_denied")
		patch(adminID, adminKey, w.body, w.query).RequireError(t, 403, "permission_denied")
		patch(narrowID, plain, w.body, w.query).RequireError(t, 403, "step_up_required")
	}
	// Narrowing needs no step-up, and the stepped-up session may widen.
	s.Must(200, patch(narrowID, plain, map[string]any{"expires_at": time.Now().Add(30 * time.Minute).Format(time.RFC3339)}))
	r := s.Must(200, patch(narrowID, token, map[string]any{"capabilities": []string{"keys:read", "audit:read"}, "expires_at": muchLater}))
	require.ElementsMatch(t, []string{"keys:read", "audit:read"}, r.Get("key.capabilities"))
}

// TestPatchClearsKeyMetadata: each form of clearing a key's metadata through PATCH
// (testutil.ClearForms) stores it empty (200, and a later GET agrees), never a 500, and
// changes nothing else.
func TestPatchClearsKeyMetadata(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("patch")
	keyID, _ := s.IngestKey(token, s.Project(token))
	for _, f := range testutil.ClearForms("metadata", "{}") {
		t.Run(f.Name, func(t *testing.T) {
			set := s.Call("PATCH", "/v1/keys/"+keyID, token, map[string]any{"metadata": map[string]string{"team": "web"}})
			set.OK(t)
			require.Equal(t, map[string]any{"team": "web"}, set.Get("key.metadata"))
			r := s.Call("PATCH", "/v1/keys/"+keyID+f.Query, token, f.Body)
			r.OK(t)
			require.Equal(t, map[string]any{}, r.Get("key.metadata"), r.Raw)
			require.Equal(t, "production-web", r.Str("key.name"), "the mask limits the change")
			got := s.Call("GET", "/v1/keys/"+keyID, token, nil)
			got.OK(t)
			require.Equal(t, map[string]any{}, got.Get("key.metadata"), got.Raw)
		})
	}
}
