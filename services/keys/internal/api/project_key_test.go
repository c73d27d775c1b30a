package api_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// projectWithKey creates a project under a per_project profile and returns its id, its
// key's id and secret.
func (s *suite) projectWithKey(token string) (project, keyID, secret string) {
	s.t.Helper()
	r := s.Must(200, s.createProject(token))
	require.Regexp(s.t, deeptracerKey, r.Str("secret"))
	return r.Str("project.id"), r.Str("key.id"), r.Str("secret")
}

// TestOneKeyPerProject: a project created under deeptracer holds its key; a second key of
// the type is 409 already_exists naming it, by a session or an account key; the type's
// keys take no environment and no expiry, at creation or by PATCH; other changes work.
func TestOneKeyPerProject(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	owner, accountID, _ := s.proAccount("one-key")
	project, keyID, _ := s.projectWithKey(owner)
	second := map[string]any{"type": "ingest", "project_id": project, "name": "another"}

	r := s.Call("POST", "/v1/keys", owner, second)
	r.RequireError(t, 409, "already_exists")
	require.Contains(t, r.Message(), keyID)
	require.Contains(t, r.Message(), "replacement")
	acctKey := s.Must(200, s.Call("POST", "/v1/keys", owner, map[string]any{"type": "account"})).Str("secret")
	s.Call("POST", "/v1/keys", acctKey, second).RequireError(t, 409, "already_exists")
	s.Call("POST", "/v1/keys", owner, second, "Idempotency-Key", "second-key").RequireError(t, 409, "already_exists")

	for name, body := range map[string]map[string]any{
		"environment": {"type": "ingest", "project_id": project, "environment": "prd"},
		"expires_at":  {"type": "ingest", "project_id": project, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	} {
		s.Call("POST", "/v1/keys", owner, body).RequireError(t, 400, "invalid_argument", name)
	}
	s.Call("PATCH", "/v1/keys/"+keyID, owner, map[string]any{"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}).
		RequireError(t, 400, "invalid_argument")
	renamed := s.Must(200, s.Call("PATCH", "/v1/keys/"+keyID, owner, map[string]any{"name": "browser and server"}))
	require.Equal(t, "browser and server", renamed.Str("key.name"))
	require.Nil(t, renamed.Get("key.expires_at"))

	// An adopted key of the type is the project's key too: not a second one.
	deeptracer, err := keyformat.LoadProfile("deeptracer")
	require.NoError(t, err)
	adopted, err := deeptracer.Generate("ingest")
	require.NoError(t, err)
	s.Call("POST", "/v1/keys:import", owner, map[string]any{"type": "ingest", "secret": adopted, "project_id": project}).
		RequireError(t, 409, "already_exists")

	// Another project of the account has its own key.
	other, otherKey, _ := s.projectWithKey(owner)
	require.NotEqual(t, project, other)
	require.NotEqual(t, keyID, otherKey)
	live := s.Must(200, s.Call("GET", "/v1/keys?type=ingest&status=active", owner, nil)).Get("keys").([]any)
	require.Len(t, live, 2, "one active key per project in account %s", accountID)
}

// TestOneKeyPerProjectConcurrent: under a per_project profile without replace_on_revoke,
// a project whose key was revoked holds none; of many creations at once exactly one
// commits and every other is 409 already_exists (the database decides, not a check that
// ran before it).
func TestOneKeyPerProjectConcurrent(t *testing.T) {
	profile := testutil.ProfileFile(t, "deeptracer", func(t *keyformat.Type) { t.ReplaceOnRevoke = false })
	s := startSuite(t, withProfile(profile))
	token, _ := s.signUp("one-key-race")
	project, keyID, _ := s.projectWithKey(token)
	r := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":revoke", token, map[string]any{"reason": "rotating by hand"}))
	require.Nil(t, r.Get("replacement"), "not a replace_on_revoke type")

	replies := make([]testutil.Reply, 12)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Go(func() {
			replies[i] = s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project})
		})
	}
	wg.Wait()
	created := 0
	for _, r := range replies {
		if r.Status == 200 {
			created++
			require.Regexp(t, deeptracerKey, r.Str("secret"))
			continue
		}
		r.RequireError(t, 409, "already_exists")
	}
	require.Equal(t, 1, created)
	live := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project+"&status=active", token, nil)).Get("keys").([]any)
	require.Len(t, live, 1)
}

// TestProjectKeyRotation: a project's key rotates like any key (the old one in grace beside
// its successor), but not again while a key of the project is still in grace, so a project
// holds one working key and at most one in grace; revoking the one in grace mints nothing
// (the active key remains) and lets the rotation through; a rotation with no grace does too.
func TestProjectKeyRotation(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	token, _ := s.signUp("project-key-rotation")
	project, k1, s1 := s.projectWithKey(token)

	r := s.Must(200, s.Call("POST", "/v1/keys/"+k1+":rotate", token, map[string]any{}))
	k2, s2 := r.Str("key.id"), r.Str("secret")
	require.Regexp(t, deeptracerKey, s2)
	require.Equal(t, "grace", r.Str("previous.status"))
	require.Equal(t, "active", r.Str("key.status"))
	require.Equal(t, "ok", s.Verify(token, s1).Str("code"))
	require.Equal(t, "ok", s.Verify(token, s2).Str("code"))
	s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project}).RequireError(t, 409, "already_exists")

	refused := s.Call("POST", "/v1/keys/"+k2+":rotate", token, map[string]any{})
	refused.RequireError(t, 409, "conflict")
	require.Contains(t, refused.Message(), k1)
	s.Call("POST", "/v1/keys/"+k1+":rotate", token, map[string]any{}).RequireError(t, 409, "conflict") // not active

	// Revoking the key in grace: no replacement, the active key goes on.
	r = s.Must(200, s.Call("POST", "/v1/keys/"+k1+":revoke", token, map[string]any{}))
	require.Equal(t, "revoked", r.Str("key.status"))
	require.Nil(t, r.Get("replacement"))
	require.Equal(t, "ok", s.Verify(token, s2).Str("code"))

	r = s.Must(200, s.Call("POST", "/v1/keys/"+k2+":rotate", token, map[string]any{"grace_period_seconds": 0}))
	k3 := r.Str("key.id")
	require.Equal(t, "expired", r.Str("previous.status"))
	r = s.Must(200, s.Call("POST", "/v1/keys/"+k3+":rotate", token, map[string]any{}))
	require.Equal(t, "grace", r.Str("previous.status"), "a key whose grace is over is no obstacle")
	live := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project, token, nil)).Get("keys").([]any)
	statuses := map[string]int{}
	for _, k := range live {
		statuses[testutil.Str(k.(map[string]any), "status")]++
	}
	require.Equal(t, map[string]int{"active": 1, "grace": 1, "expired": 1, "revoked": 1}, statuses)
}

// TestRevokeReplaces: revoking a project's key (deeptracer: replace_on_revoke) answers the
// revoked key and its replacement with the secret, shown once: bound as the old key was,
// active, verifying where the old key no longer does; key.revoked and key.created are
// published and keys.revoke audited with replacement_key_id; revoking again replaces
// nothing; a retry with the same Idempotency-Key answers the same replacement; and with
// wait_for_gateways the answer carries the receipt too.
func TestRevokeReplaces(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	_, js := linktest.Connect(t)
	a := s.SignUp("replace-on-revoke")
	project, keyID, secret := s.projectWithKey(a.Token)

	r := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":revoke", a.Token, map[string]any{"reason": "leaked in a screenshot"}))
	require.Equal(t, keyID, r.Str("key.id"))
	require.Equal(t, "revoked", r.Str("key.status"))
	replID, replSecret := r.Str("replacement.key.id"), r.Str("replacement.secret")
	require.Regexp(t, deeptracerKey, replSecret)
	require.NotEqual(t, secret, replSecret)
	require.Equal(t, "active", r.Str("replacement.key.status"))
	require.Equal(t, project, r.Str("replacement.key.project_id"))
	require.Equal(t, "web-app", r.Str("replacement.key.name"))
	require.Equal(t, a.UserID, r.Str("replacement.key.created_by"))
	require.Equal(t, []any{"ingest"}, r.Get("replacement.key.capabilities"))
	require.Equal(t, "revoked", s.Verify(a.Token, secret).Str("code"))
	require.Equal(t, "ok", s.Verify(a.Token, replSecret).Str("code"))
	require.NotContains(t, s.Must(200, s.Call("GET", "/v1/keys/"+replID, a.Token, nil)).Raw, replSecret)

	s.findEvent(js, "key.revoked", func(ev *eventsv1.Event) bool { return ev.GetKeyRevoked().GetKeyId() == keyID })
	created := s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == replID })
	require.Equal(t, project, created.GetKeyCreated().GetProjectId())
	audit, raw := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.revoke" })
	require.Equal(t, keyID, audit.GetResourceId())
	require.Equal(t, replID, audit.GetDetails()["replacement_key_id"])
	require.NotContains(t, string(raw), replSecret)

	again := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":revoke", a.Token, map[string]any{}))
	require.Nil(t, again.Get("replacement"), "a key revoked before is not replaced again")

	// A retry of a revocation gets the replacement it minted, not a second one.
	first := s.Must(200, s.Call("POST", "/v1/keys/"+replID+":revoke", a.Token, map[string]any{}, "Idempotency-Key", "revoke-once"))
	retry := s.Must(200, s.Call("POST", "/v1/keys/"+replID+":revoke", a.Token, map[string]any{}, "Idempotency-Key", "revoke-once"))
	require.Equal(t, first.Str("replacement.secret"), retry.Str("replacement.secret"))
	require.NotEmpty(t, first.Str("replacement.secret"))

	withReceipt := s.Must(200, s.Call("POST", "/v1/keys/"+first.Str("replacement.key.id")+":revoke", a.Token,
		map[string]any{"wait_for_gateways": true, "wait_timeout_ms": 200}))
	require.NotNil(t, withReceipt.Get("receipt"))
	require.Regexp(t, deeptracerKey, withReceipt.Str("replacement.secret"))
	live := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project+"&status=active", a.Token, nil)).Get("keys").([]any)
	require.Len(t, live, 1)
	require.Equal(t, withReceipt.Str("replacement.key.id"), testutil.Str(live[0].(map[string]any), "id"))
}

// TestRevokeWithoutReplacement: a key whose project was deleted is revoked with no
// replacement: nothing can be minted for a project that does not exist.
func TestRevokeWithoutReplacement(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	token, _ := s.signUp("no-replacement")
	project, keyID, _ := s.projectWithKey(token)
	s.Must(200, s.Call("DELETE", "/v1/projects/"+project, token, nil))
	r := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":revoke", token, map[string]any{}))
	require.Equal(t, "revoked", r.Str("key.status"))
	require.Nil(t, r.Get("replacement"))
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys").([]any), 1)
}

// TestProjectKeyBadInput: the changed endpoints under a per_project profile answer bad
// input with the envelope, never a 500.
func TestProjectKeyBadInput(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	token, _ := s.signUp("project-key-bad")
	project, keyID, _ := s.projectWithKey(token)
	for _, c := range []struct {
		name, method, path string
		body               any
		status             int
		code               apierr.Code
	}{
		{"project: malformed json", "POST", "/v1/projects", `{"name": "x",`, 400, "invalid_argument"},
		{"project: no name", "POST", "/v1/projects", map[string]any{}, 400, "invalid_argument"},
		{"project: unknown field", "POST", "/v1/projects", map[string]any{"name": "x", "key": "dt_0123"}, 400, "invalid_argument"},
		{"project: bad origin", "POST", "/v1/projects", map[string]any{"name": "x", "allowed_origins": []string{"not an origin"}}, 400, "invalid_argument"},
		{"project: origins not a list", "POST", "/v1/projects", map[string]any{"name": "x", "allowed_origins": "https://a.example"}, 400, "invalid_argument"},
		{"key: second of the project", "POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": project}, 409, "already_exists"},
		{"key: with environment", "POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		{"key: unknown environment", "POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": project, "environment": "qa"}, 400, "invalid_argument"},
		{"key: with expiry", "POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": project, "expires_at": "2999-01-01T00:00:00Z"}, 400, "invalid_argument"},
		{"key: no project", "POST", "/v1/keys", map[string]any{"type": "ingest"}, 400, "invalid_argument"},
		{"key: unknown project", "POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": "prj_01jq0000000000000000000000"}, 404, "not_found"},
		{"patch: expiry", "PATCH", "/v1/keys/" + keyID, map[string]any{"expires_at": "2999-01-01T00:00:00Z"}, 400, "invalid_argument"},
		{"revoke: bad id", "POST", "/v1/keys/dt_0123:revoke", map[string]any{}, 400, "invalid_argument"},
		{"revoke: unknown id", "POST", "/v1/keys/key_01jq0000000000000000000000:revoke", map[string]any{}, 404, "not_found"},
		{"revoke: reason not text", "POST", "/v1/keys/" + keyID + ":revoke", map[string]any{"reason": 7}, 400, "invalid_argument"},
		{"revoke: NUL in reason", "POST", "/v1/keys/" + keyID + ":revoke", map[string]any{"reason": "a\x00"}, 400, "invalid_argument"},
		{"revoke: huge wait", "POST", "/v1/keys/" + keyID + ":revoke", map[string]any{"wait_for_gateways": true, "wait_timeout_ms": 1 << 30}, 400, "invalid_argument"},
		{"rotate: huge grace", "POST", "/v1/keys/" + keyID + ":rotate", map[string]any{"grace_period_seconds": 1 << 40}, 400, "invalid_argument"},
	} {
		s.Call(c.method, c.path, token, c.body).RequireError(t, c.status, c.code, c.name)
	}
	// None of it revoked, replaced or added a key.
	live := s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys").([]any)
	require.Len(t, live, 1)
	require.Equal(t, "active", testutil.Str(live[0].(map[string]any), "status"))
}
