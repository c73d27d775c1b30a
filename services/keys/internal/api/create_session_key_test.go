package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

// page is the web page that asks for session keys in these tests.
const page = "https://app.example.com"

// mintSession calls POST /v1/session-keys with token for project and env; headers are
// name, value pairs (an "Origin", say).
func (s *suite) mintSession(token, project, env string, headers ...string) testutil.Reply {
	s.t.Helper()
	return s.Call("POST", "/v1/session-keys", token, map[string]any{"project_id": project, "environment": env}, headers...)
}

// TestSessionKeys: a session, or an ingest key of the project, mints an lk_sess_ key from a
// page of an allowed origin: ingest only, expiring an hour after minting, usable only from
// an allowed origin, audited under the account by whoever asked, and no management
// credential at all.
func TestSessionKeys(t *testing.T) {
	s := startSuite(t)
	a := s.SignUp("browser")
	project := s.Project(a.Token, page)
	ingestID, ingest := s.IngestKey(a.Token, project)

	r := s.Must(200, s.mintSession(a.Token, project, "prd", "Origin", page))
	secret, id := r.Str("secret"), r.Str("key.id")
	require.True(t, strings.HasPrefix(secret, "lk_sess_"), "secret %q", secret)
	require.Equal(t, "session", r.Str("key.type"))
	require.Equal(t, a.AccountID, r.Str("key.account_id"))
	require.Equal(t, project, r.Str("key.project_id"))
	require.Equal(t, "prd", r.Str("key.environment"))
	require.Equal(t, []any{"ingest"}, r.Get("key.capabilities"))
	require.Equal(t, "active", r.Str("key.status"))
	require.Equal(t, a.UserID, r.Str("key.created_by"))
	require.Equal(t, r.Str("key.expires_at"), r.Str("expires_at"))
	created, err := time.Parse(time.RFC3339Nano, r.Str("key.created_at"))
	require.NoError(t, err)
	expires, err := time.Parse(time.RFC3339Nano, r.Str("expires_at"))
	require.NoError(t, err)
	require.Equal(t, time.Hour, expires.Sub(created), "the type's session_window")
	require.NotContains(t, r.Raw[strings.Index(r.Raw, `"key"`):strings.Index(r.Raw, `"secret"`)], secret)
	require.Equal(t, page, r.Header.Get("Access-Control-Allow-Origin"), "the page may read the answer")
	// The minting is audited (checked before any other call is audited) under the account, with the new key's id, never its secret.
	ev := s.lastAudit(natsx.AuditSubject(s.ns, a.AccountID), func(ev *auditv1.AuditEvent) bool { return ev.GetResourceId() == id })
	require.Equal(t, "keys.create_session", ev.GetAction())
	require.Equal(t, "ok", ev.GetResult())
	require.Equal(t, "user", ev.GetActor().GetType())
	raw, err := proto.Marshal(ev)
	require.NoError(t, err)
	require.NotContains(t, string(raw), secret)

	// A read shows what the answer said.
	got := s.Must(200, s.Call("GET", "/v1/keys/"+id, a.Token, nil))
	require.Equal(t, r.Str("key.expires_at"), got.Str("key.expires_at"))

	// It is decided as the gateway will decide it: only from the allowed origin, ingest only.
	require.Equal(t, "ok", s.Verify(s.operator, secret, "origin", page, "capability", "ingest").Str("code"))
	require.Equal(t, "origin_not_allowed", s.Verify(s.operator, secret).Str("code"))
	require.Equal(t, "origin_not_allowed", s.Verify(s.operator, secret, "origin", "https://evil.example.com").Str("code"))
	require.Equal(t, "insufficient_capability", s.Verify(s.operator, secret, "origin", page, "capability", "keys:write").Str("code"))

	// The ingest key of the project mints one too, for its own environment, and is the
	// actor of record.
	byKey := s.Must(200, s.mintSession(ingest, project, "prd", "Origin", page))
	require.True(t, strings.HasPrefix(byKey.Str("secret"), "lk_sess_"))
	require.Equal(t, ingestID, byKey.Str("key.created_by"))
	require.NotEqual(t, secret, byKey.Str("secret"), "each call mints a new key")
	ev = s.lastAudit(natsx.AuditSubject(s.ns, a.AccountID), func(ev *auditv1.AuditEvent) bool { return ev.GetResourceId() == byKey.Str("key.id") })
	require.Equal(t, "project_key", ev.GetActor().GetType())
	require.Equal(t, ingestID, ev.GetActor().GetId())
	require.Equal(t, ingestID, ev.GetKeyId())

	// A session key manages nothing, and never mints the next one.
	for _, c := range []struct{ method, path string }{{"GET", "/v1/keys"}, {"POST", "/v1/keys"}, {"POST", "/v1/session-keys"}, {"GET", "/v1/projects"}} {
		body := map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}
		if c.method == "GET" {
			body = nil
		} else if c.path == "/v1/session-keys" {
			body = map[string]any{"project_id": project, "environment": "prd"}
		}
		refused := s.Call(c.method, c.path, secret, body, "Origin", page)
		refused.RequireError(t, 401, "unauthenticated", c.path)
		require.Contains(t, refused.Message(), "browser session key", c.path)
	}
}

// TestSessionKeyPreflight: a page on another origin may call POST /v1/session-keys: its
// preflight is answered 204 for any origin (the call itself is judged against the
// project), and the management API's other routes answer no preflight.
func TestSessionKeyPreflight(t *testing.T) {
	s := startSuite(t)
	pre := func(path string) testutil.Reply {
		return s.Send("OPTIONS", s.Base+path, "", nil, "Origin", page,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type")
	}
	r := pre("/v1/session-keys")
	require.Equal(t, http.StatusNoContent, r.Status, r.Raw)
	require.Equal(t, page, r.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "POST", r.Header.Get("Access-Control-Allow-Methods"))
	require.Contains(t, r.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	require.Contains(t, r.Header.Get("Access-Control-Allow-Headers"), "Content-Type")
	require.NotEmpty(t, r.Header.Get("Access-Control-Max-Age"))
	require.NotEmpty(t, r.RequestID())

	other := pre("/v1/keys")
	require.NotEqual(t, http.StatusNoContent, other.Status)
	require.Empty(t, other.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, s.Call("GET", "/v1/key-types", s.operator, nil, "Origin", page).Header.Get("Access-Control-Allow-Origin"))

	// Refusals are readable by the page too.
	refused := s.Call("POST", "/v1/session-keys", "", map[string]any{}, "Origin", "https://evil.example.com")
	refused.RequireError(t, 401, "unauthenticated")
	require.Equal(t, "https://evil.example.com", refused.Header.Get("Access-Control-Allow-Origin"))
}

// TestSessionKeysBadInput: every way of asking wrongly is a 4xx in the envelope, and mints
// nothing.
func TestSessionKeysBadInput(t *testing.T) {
	s := startSuite(t)
	a := s.SignUp("browser-bad")
	project := s.Project(a.Token, page)
	open := s.Project(a.Token) // allowed_origins empty: no page may use a session key
	other := s.Project(a.Token, page)
	_, ingest := s.IngestKey(a.Token, project) // bound to prd
	revokedID, revoked := s.IngestKey(a.Token, project)
	s.Must(200, s.Call("POST", "/v1/keys/"+revokedID+":revoke", a.Token, map[string]any{}))
	_, otherIngest := s.IngestKey(a.Token, other)
	anonymous := s.Must(200, s.Call("POST", "/v1/anonymous-keys", "", map[string]any{})).Str("secret")
	session := s.Must(200, s.mintSession(a.Token, project, "prd", "Origin", page)).Str("secret")
	foreign := s.SignUp("browser-foreign")
	foreignProject := s.Project(foreign.Token, page)
	garbage, err := keyformat.Default().Generate("ingest")
	require.NoError(t, err)

	// A pro account's key (account keys need the pro plan).
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+a.AccountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.Must(200, s.Call("POST", "/v1/account/verify-password", a.Token, map[string]any{"password": a.Password}))
	var accountKey string
	testutil.Eventually(t, 5*time.Second, func() bool {
		r := s.Call("POST", "/v1/keys", a.Token, map[string]any{"type": "account", "capabilities": []string{"keys:write"}})
		accountKey = r.Str("secret")
		return r.Status == 200
	}, "the plan change to reach keys")

	origin := []string{"Origin", page}
	cases := []struct {
		name    string
		token   string
		body    any
		headers []string
		status  int
		code    apierr.Code
		message string
	}{
		{"no Origin", a.Token, map[string]any{"project_id": project, "environment": "prd"}, nil, 403, "origin_not_allowed", "no Origin header"},
		{"foreign Origin", a.Token, map[string]any{"project_id": project, "environment": "prd"}, []string{"Origin", "https://evil.example.com"}, 403, "origin_not_allowed", "is not one of project"},
		{"Origin differing in case", a.Token, map[string]any{"project_id": project, "environment": "prd"}, []string{"Origin", "https://APP.example.com"}, 403, "origin_not_allowed", ""},
		{"empty allowed_origins", a.Token, map[string]any{"project_id": open, "environment": "prd"}, origin, 403, "origin_not_allowed", "lists no allowed_origins"},
		{"another account's project", a.Token, map[string]any{"project_id": foreignProject, "environment": "prd"}, origin, 404, "not_found", ""},
		{"unknown environment", a.Token, map[string]any{"project_id": project, "environment": "qa"}, origin, 400, "invalid_argument", `environment "qa"`},
		{"no fields", a.Token, map[string]any{}, origin, 400, "invalid_argument", "project_id is required"},
		{"no environment", a.Token, map[string]any{"project_id": project}, origin, 400, "invalid_argument", "environment is required"},
		{"malformed project_id", a.Token, map[string]any{"project_id": "nope", "environment": "prd"}, origin, 400, "invalid_argument", ""},
		{"unknown field", a.Token, map[string]any{"project_id": project, "environment": "prd", "origin": page}, origin, 400, "invalid_argument", ""},
		{"not JSON", a.Token, "{", origin, 400, "invalid_argument", ""},
		{"no credential", "", map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", ""},
		{"garbage credential", "lk_ing_garbage", map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", ""},
		{"unknown ingest key", garbage, map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", ""},
		{"revoked ingest key", revoked, map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", ""},
		{"another project's ingest key", otherIngest, map[string]any{"project_id": project, "environment": "prd"}, origin, 403, "permission_denied", "another project"},
		{"ingest key of another environment", ingest, map[string]any{"project_id": project, "environment": "dev"}, origin, 403, "permission_denied", `environment "prd"`},
		{"ingest key, no Origin", ingest, map[string]any{"project_id": project, "environment": "prd"}, nil, 403, "origin_not_allowed", ""},
		{"anonymous key", anonymous, map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", ""},
		{"session key", session, map[string]any{"project_id": project, "environment": "prd"}, origin, 401, "unauthenticated", "browser session key"},
		{"account key", accountKey, map[string]any{"project_id": project, "environment": "prd"}, origin, 403, "permission_denied", "not an account key"},
		{"operator", s.operator, map[string]any{"project_id": project, "environment": "prd"}, origin, 403, "permission_denied", ""},
	}
	for _, c := range cases {
		r := s.Call("POST", "/v1/session-keys", c.token, c.body, c.headers...)
		r.RequireError(t, c.status, c.code, c.name)
		require.Contains(t, r.Message(), c.message, c.name)
		require.Empty(t, r.Str("secret"), c.name)
	}
	// Nothing was minted but the one session key above.
	listed := s.Must(200, s.Call("GET", "/v1/keys?type=session", a.Token, nil))
	require.Len(t, listed.Get("keys"), 1)
}

// TestSessionKeysTypedProfile: under the typed profile session keys are gt_session_, minted
// with a gt_dev_ ingest key too.
func TestSessionKeysTypedProfile(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "typed" })
	a := s.SignUp("typed-browser")
	project := s.Project(a.Token, page)
	_, dev := s.IngestKey(a.Token, project)
	for _, token := range []string{a.Token, dev} {
		r := s.Must(200, s.mintSession(token, project, "prd", "Origin", page))
		require.True(t, strings.HasPrefix(r.Str("secret"), "gt_session_"), "secret %q", r.Str("secret"))
		require.Equal(t, []any{"ingest"}, r.Get("key.capabilities"))
		require.Equal(t, "ok", s.Verify(s.operator, r.Str("secret"), "origin", page, "capability", "ingest").Str("code"))
		require.Equal(t, "insufficient_capability", s.Verify(s.operator, r.Str("secret"), "origin", page, "capability", "enrichment").Str("code"))
	}
}

// TestSessionKeysNeedSessionType: a profile with no session type answers a clear 404.
func TestSessionKeysNeedSessionType(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "envkeys" })
	token, _ := s.signUp("no-sessions")
	project := s.Project(token, page)
	r := s.mintSession(token, project, "prd", "Origin", page)
	r.RequireError(t, 404, "not_found")
	require.Contains(t, r.Message(), "no browser session key type")
	require.Empty(t, r.Str("secret"))
}

// TestSessionKeysLimitedPerKey: minting takes from the management API's buckets; an ingest
// key that asks too often is held back by its own per-key bucket (429, tier key).
func TestSessionKeysLimitedPerKey(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) {
		k.Limits = limits.Config{PerKey: ratelimit.Limit{PerSecond: 0.01, Burst: 2}}
	})
	token, _ := s.signUp("browser-limited")
	project := s.Project(token, page)
	_, ingest := s.IngestKey(token, project)
	for range 2 {
		s.Must(200, s.mintSession(ingest, project, "prd", "Origin", page))
	}
	r := s.mintSession(ingest, project, "prd", "Origin", page)
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "key", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	s.Must(200, s.mintSession(token, project, "prd", "Origin", page)) // a session is not that key
}
