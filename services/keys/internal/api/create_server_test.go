package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// createServer calls POST /v1/servers and requires a 200.
func (s *suite) createServer(token, project, name string, headers ...string) testutil.Reply {
	s.t.Helper()
	return s.Must(200, s.Call("POST", "/v1/servers", token, map[string]any{
		"project_id": project, "name": name, "hostname": name + ".example.com", "tags": []string{"web", "eu"},
	}, headers...))
}

// TestCreateServer: a server and its collector key (lk_srv_ under the default profile),
// the key in this answer only, bound to the project and the server (VerifyKey says so),
// with key.created naming the server, and an audit event of the server.
func TestCreateServer(t *testing.T) {
	s := startSuite(t)
	_, js := linktest.Connect(t)
	a := s.SignUp("fleet")
	project := s.Project(a.Token)

	r := s.createServer(a.Token, project, "web-1")
	srv := r.Get("server").(map[string]any)
	id, keyID, apiKey := r.Str("server", "id"), r.Str("server", "key_id"), r.Str("server", "api_key")
	require.True(t, strings.HasPrefix(id, "srv_"), id)
	require.True(t, strings.HasPrefix(apiKey, "lk_srv_"), "the default profile's collector key")
	require.Equal(t, "web-1", srv["name"])
	require.Equal(t, "web-1.example.com", srv["hostname"])
	require.Equal(t, []any{"web", "eu"}, srv["tags"])
	require.Equal(t, project, srv["project_id"])
	require.Equal(t, a.AccountID, srv["account_id"])
	require.Equal(t, apiKey[:len("lk_srv_")+8], srv["key_display_prefix"])
	require.NotEmpty(t, srv["created_at"])

	// The key is a collector key of the project, bound to the server.
	v := s.Verify(a.Token, apiKey)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, keyID, v.Str("key", "id"))
	require.Equal(t, id, v.Str("key", "server_id"))
	require.Equal(t, project, v.Str("key", "project_id"))
	require.Equal(t, "collector", v.Str("key", "type"))
	require.Empty(t, v.Str("key", "environment"))
	require.Equal(t, id, s.Must(200, s.Call("GET", "/v1/keys/"+keyID, a.Token, nil)).Str("key", "server_id"))

	// The secret is shown once: reading the server never shows it.
	g := s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil))
	require.Empty(t, g.Str("server", "api_key"))
	require.NotContains(t, g.Raw, apiKey)
	require.Equal(t, keyID, g.Str("server", "key_id"))

	created := s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == keyID })
	require.Equal(t, id, created.GetKeyCreated().GetServerId())
	require.Equal(t, project, created.GetKeyCreated().GetProjectId())
	ev, raw := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "servers.create" })
	require.Equal(t, "server", ev.GetResourceType())
	require.Equal(t, id, ev.GetResourceId())
	require.Equal(t, keyID, ev.GetDetails()["key_id"])
	require.NotContains(t, string(raw), apiKey[len("lk_srv_"):])
}

// TestServersCallers: a session or an account key with servers:manage may manage servers;
// an account key without it is 403 insufficient_capability; a collector key is 403
// permission_denied on every management call, here and at accounts; no credential is 401.
func TestServersCallers(t *testing.T) {
	s := startSuite(t)
	token, _, _ := s.proAccount("callers")
	project := s.Project(token)
	manager := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"servers:manage"}})).Str("secret")
	reader := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).Str("secret")

	r := s.createServer(manager, project, "by-key")
	collector, id := r.Str("server", "api_key"), r.Str("server", "id")
	s.Must(200, s.Call("GET", "/v1/servers/"+id, manager, nil))
	s.Call("POST", "/v1/servers", reader, map[string]any{"project_id": project, "name": "x"}).RequireError(t, 403, "insufficient_capability")
	s.Call("GET", "/v1/servers", reader, nil).RequireError(t, 403, "insufficient_capability")
	s.Call("GET", "/v1/servers", "", nil).RequireError(t, 401, "unauthenticated")

	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/servers", nil},
		{"POST", "/v1/servers", map[string]any{"project_id": project, "name": "x"}},
		{"GET", "/v1/servers/" + id, nil},
		{"POST", "/v1/servers/" + id + ":rotateKey", map[string]any{}},
		{"DELETE", "/v1/servers/" + id, nil},
		{"GET", "/v1/keys", nil},
		{"POST", "/v1/keys", map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}},
		{"POST", "/v1/keys:verify", map[string]any{"key": collector}},
		{"POST", "/v1/keys:import", map[string]any{"type": "collector", "secret": "lk_srv_x", "server_id": id}},
		{"POST", "/v1/session-keys", map[string]any{"project_id": project, "environment": "prd"}},
		{"GET", "/v1/key-types", nil},
		{"GET", "/v1/projects", nil},
		{"GET", "/v1/account", nil},
	} {
		r := s.Call(c.method, c.path, collector, c.body)
		r.RequireError(t, 403, "permission_denied", c.method+" "+c.path)
		require.Contains(t, r.Message(), "collector key", c.path)
	}
	// And it still works, for its one job.
	require.Equal(t, "ok", s.Verify(token, collector).Str("code"))
}

// TestCreateServerBadInput: every bad field is a 400 in the envelope naming it, never a
// 500; a project that is not the account's is 404.
func TestCreateServerBadInput(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("bad-servers")
	project := s.Project(token)
	other := s.Project(s.SignUp("other").Token)
	tooMany := make([]string, 33)
	for i := range tooMany {
		tooMany[i] = "t" + strings.Repeat("x", i)
	}
	for name, c := range map[string]struct {
		body   map[string]any
		status int
		code   apierr.Code
		says   string
	}{
		"no project":         {map[string]any{"name": "a"}, 400, "invalid_argument", "project_id is required"},
		"malformed project":  {map[string]any{"project_id": "lk_srv_abc", "name": "a"}, 400, "invalid_argument", "project_id is not an id"},
		"another's project":  {map[string]any{"project_id": other, "name": "a"}, 404, "not_found", "does not exist"},
		"unknown project":    {map[string]any{"project_id": "prj_01j00000000000000000000000", "name": "a"}, 404, "not_found", "does not exist"},
		"no name":            {map[string]any{"project_id": project}, 400, "invalid_argument", "name is required"},
		"long name":          {map[string]any{"project_id": project, "name": strings.Repeat("n", 201)}, 400, "invalid_argument", "name is 201 characters"},
		"control in name":    {map[string]any{"project_id": project, "name": "a\x01b"}, 400, "invalid_argument", "control characters"},
		"long hostname":      {map[string]any{"project_id": project, "name": "a", "hostname": strings.Repeat("h", 254)}, 400, "invalid_argument", "hostname is 254"},
		"too many tags":      {map[string]any{"project_id": project, "name": "a", "tags": tooMany}, 400, "invalid_argument", "tags has 33 entries"},
		"empty tag":          {map[string]any{"project_id": project, "name": "a", "tags": []string{""}}, 400, "invalid_argument", "tags must not be empty"},
		"long tag":           {map[string]any{"project_id": project, "name": "a", "tags": []string{strings.Repeat("t", 65)}}, 400, "invalid_argument", "tag is 65"},
		"tags of wrong type": {map[string]any{"project_id": project, "name": "a", "tags": "web"}, 400, "invalid_argument", "wrong type"},
		"unknown field":      {map[string]any{"project_id": project, "name": "a", "api_key": "lk_srv_x"}, 400, "invalid_argument", "api_key"},
		"name of wrong type": {map[string]any{"project_id": project, "name": 7}, 400, "invalid_argument", "wrong type"},
		"NUL in hostname":    {map[string]any{"project_id": project, "name": "a", "hostname": "a\u0000b"}, 400, "invalid_argument", ""},
	} {
		r := s.Call("POST", "/v1/servers", token, c.body)
		r.RequireError(t, c.status, c.code, name)
		require.Contains(t, r.Message(), c.says, name)
	}
	// Duplicate tags are kept once, in order.
	r := s.Must(200, s.Call("POST", "/v1/servers", token, map[string]any{"project_id": project, "name": "a", "tags": []string{"b", "a", "b"}}))
	require.Equal(t, []any{"b", "a"}, r.Get("server", "tags"))
	require.Len(t, s.Must(200, s.Call("GET", "/v1/servers", token, nil)).Get("servers"), 1, "nothing was made by the refusals")
}

// TestCreateServerIdempotent: with an Idempotency-Key, a replay of the same body gets the
// stored answer (the same server and api_key) and makes nothing; another body is 422.
func TestCreateServerIdempotent(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("idem-servers")
	project := s.Project(token)
	first := s.createServer(token, project, "once", "Idempotency-Key", "srv-once")
	again := s.createServer(token, project, "once", "Idempotency-Key", "srv-once")
	require.Equal(t, first.Raw, again.Raw, "the stored answer, api_key included")
	require.Len(t, s.Must(200, s.Call("GET", "/v1/servers", token, nil)).Get("servers"), 1)
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys"), 1)
	s.Call("POST", "/v1/servers", token, map[string]any{"project_id": project, "name": "twice"}, "Idempotency-Key", "srv-once").
		RequireError(t, 422, "idempotency_key_reused")
}

// TestServerCreatesCap: server creations per account and hour are capped (tier hourly);
// a refused creation makes nothing, and other accounts are not affected.
func TestServerCreatesCap(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.ServerCreatesPerHour = 2 })
	token, _ := s.signUp("capped-servers")
	project := s.Project(token)
	s.createServer(token, project, "a")
	s.createServer(token, project, "b")
	r := s.Call("POST", "/v1/servers", token, map[string]any{"project_id": project, "name": "c"})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Contains(t, r.Message(), "create servers at most 2 times an hour")
	require.Len(t, s.Must(200, s.Call("GET", "/v1/servers", token, nil)).Get("servers"), 2)
	other, _ := s.signUp("uncapped")
	s.createServer(other, s.Project(other), "a")
}

// TestServersWithoutServersType: a profile with no servers type answers every servers
// call 404 with a message that says why.
func TestServersWithoutServersType(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "typed" })
	token, _ := s.signUp("no-fleet")
	project := s.Project(token)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/v1/servers", map[string]any{"project_id": project, "name": "a"}},
		{"GET", "/v1/servers", nil},
		{"GET", "/v1/servers/srv_01j00000000000000000000000", nil},
		{"DELETE", "/v1/servers/srv_01j00000000000000000000000", nil},
		{"POST", "/v1/servers/srv_01j00000000000000000000000:rotateKey", map[string]any{}},
	} {
		r := s.Call(c.method, c.path, token, c.body)
		r.RequireError(t, 404, "not_found", c.path)
		require.Contains(t, r.Message(), "no servers type", c.path)
	}
}

// TestServerOfAnotherProfile: under gmk the collector key is gmk_cru_live_, its type
// "ingest".
func TestServerOfAnotherProfile(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "gmk" })
	token, _ := s.signUp("gmk")
	project := s.Project(token)
	r := s.createServer(token, project, "gmk-1")
	require.True(t, strings.HasPrefix(r.Str("server", "api_key"), "gmk_cru_live_"))
	v := s.Verify(token, r.Str("server", "api_key"))
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, "ingest", v.Str("key", "type"))
	require.Equal(t, r.Str("server", "id"), v.Str("key", "server_id"))
}
