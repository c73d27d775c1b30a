package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// legacyCol is a key as Glassmkr's old system minted it: col_ and a body with '_' and '-'.
const legacyCol = "col_Agent-7_fleetKEY_0123456789abcdef"

// TestImportLegacyKey: under gmk, a legacy col_ key is adopted for a server: stored only
// as its hash (the answer and the audit event never hold it), bound to the server and its
// project, it verifies like the server's own key, a second import of it is 409, and its
// rotation mints a key with the current prefix.
func TestImportLegacyKey(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "gmk" })
	_, js := linktest.Connect(t)
	a := s.SignUp("importer")
	project := s.Project(a.Token)
	srv := s.createServer(a.Token, project, "legacy-box")
	server := srv.Str("server", "id")

	r := s.Must(200, s.Call("POST", "/v1/keys:import", a.Token, map[string]any{
		"type": "ingest", "secret": legacyCol, "server_id": server, "name": "old agent",
	}))
	require.NotContains(t, r.Raw, legacyCol)
	require.NotContains(t, r.Raw, legacyCol[len("col_")+8:])
	id := r.Str("key", "id")
	require.Equal(t, "col_Agent-7_", r.Str("key", "display_prefix"))
	require.Equal(t, server, r.Str("key", "server_id"))
	require.Equal(t, project, r.Str("key", "project_id"), "the server's project")
	require.Equal(t, "ingest", r.Str("key", "type"))
	require.Equal(t, "old agent", r.Str("key", "name"))
	require.Equal(t, "active", r.Str("key", "status"))

	v := s.Verify(a.Token, legacyCol)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, id, v.Str("key", "id"))
	require.Equal(t, server, v.Str("key", "server_id"))
	// It is the server's key, but not its current one: the server keeps its own.
	require.Equal(t, srv.Str("server", "key_id"), s.Must(200, s.Call("GET", "/v1/servers/"+server, a.Token, nil)).Str("server", "key_id"))
	// A collector key, and so no management credential.
	s.Call("GET", "/v1/keys", legacyCol, nil).RequireError(t, 403, "permission_denied")

	// A second import of the same secret, in any account (a retry too, whatever its
	// Idempotency-Key: imports keep no idempotency record, which would hold a digest of the
	// secret), is 409.
	s.Call("POST", "/v1/keys:import", a.Token, map[string]any{
		"type": "ingest", "secret": legacyCol, "server_id": server, "name": "old agent",
	}, "Idempotency-Key", "import-1").RequireError(t, 409, "already_exists")
	s.Call("POST", "/v1/keys:import", a.Token, map[string]any{"type": "ingest", "secret": legacyCol, "project_id": project}).RequireError(t, 409, "already_exists")
	other, _ := s.signUp("importer-2")
	s.Call("POST", "/v1/keys:import", other, map[string]any{"type": "ingest", "secret": legacyCol, "project_id": s.Project(other)}).RequireError(t, 409, "already_exists")

	ev, raw := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.import" })
	require.Equal(t, id, ev.GetResourceId())
	require.Equal(t, server, ev.GetDetails()["server_id"])
	require.NotContains(t, string(raw), legacyCol[len("col_"):])

	// Rotation: the successor has the current prefix and the same server.
	rot := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", a.Token, map[string]any{}))
	require.True(t, strings.HasPrefix(rot.Str("secret"), "gmk_cru_live_"))
	require.Equal(t, server, rot.Str("key", "server_id"))
	require.Equal(t, "ok", s.Verify(a.Token, rot.Str("secret")).Str("code"))
	require.Equal(t, "ok", s.Verify(a.Token, legacyCol).Str("code"), "in grace")

	// Deleting the server revokes the imported key and its successor too.
	s.Must(200, s.Call("DELETE", "/v1/servers/"+server, a.Token, nil))
	require.Equal(t, "revoked", s.Verify(a.Token, legacyCol).Str("code"))
	require.Equal(t, "revoked", s.Verify(a.Token, rot.Str("secret")).Str("code"))
	s.Call("POST", "/v1/keys:import", a.Token, map[string]any{"type": "ingest", "secret": "col_" + strings.Repeat("z", 20), "server_id": server}).
		RequireError(t, 404, "not_found")
}

// TestImportKeyRules: the type's rules hold for an import, and every bad input is a 400
// (or 404, 403) in the envelope that never quotes the secret.
func TestImportKeyRules(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("import-rules")
	project := s.Project(token)
	other := s.Project(s.SignUp("import-other").Token)
	srv := s.createServer(token, project, "box").Str("server", "id")
	gen := func(typ string) string {
		k, err := keyformat.Default().Generate(typ)
		require.NoError(t, err)
		return k
	}
	ingest, collector := gen("ingest"), gen("collector")
	gmkKey, err := keyformat.LoadProfile("gmk")
	require.NoError(t, err)
	foreign, err := gmkKey.Generate("ingest")
	require.NoError(t, err)
	broken := ingest[:len(ingest)-1] + map[bool]string{true: "1", false: "0"}[ingest[len(ingest)-1] == '0']

	for name, c := range map[string]struct {
		body   map[string]any
		status int
		code   apierr.Code
	}{
		"no type":                   {map[string]any{"secret": ingest, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"unknown type":              {map[string]any{"type": "gold", "secret": ingest, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"anonymous type":            {map[string]any{"type": "anonymous", "secret": gen("anonymous")}, 400, "invalid_argument"},
		"session type":              {map[string]any{"type": "session", "secret": gen("session"), "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"no secret":                 {map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"bad checksum":              {map[string]any{"type": "ingest", "secret": broken, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"another profile's key":     {map[string]any{"type": "ingest", "secret": foreign, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"no legacy prefix here":     {map[string]any{"type": "ingest", "secret": legacyCol, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"secret of another type":    {map[string]any{"type": "ingest", "secret": collector, "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"huge secret":               {map[string]any{"type": "ingest", "secret": strings.Repeat("a", 5000), "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		"no project":                {map[string]any{"type": "ingest", "secret": ingest, "environment": "prd"}, 400, "invalid_argument"},
		"no environment":            {map[string]any{"type": "ingest", "secret": ingest, "project_id": project}, 400, "invalid_argument"},
		"unknown environment":       {map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "qa"}, 400, "invalid_argument"},
		"another's project":         {map[string]any{"type": "ingest", "secret": ingest, "project_id": other, "environment": "prd"}, 404, "not_found"},
		"server for an ingest key":  {map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "prd", "server_id": srv}, 400, "invalid_argument"},
		"malformed server":          {map[string]any{"type": "collector", "secret": collector, "server_id": "srv_x"}, 400, "invalid_argument"},
		"unknown server":            {map[string]any{"type": "collector", "secret": collector, "server_id": "srv_01j00000000000000000000000"}, 404, "not_found"},
		"server of another project": {map[string]any{"type": "collector", "secret": collector, "server_id": srv, "project_id": s.Project(token)}, 400, "invalid_argument"},
		"long name":                 {map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "prd", "name": strings.Repeat("n", 201)}, 400, "invalid_argument"},
		"account key needs a plan":  {map[string]any{"type": "account", "secret": gen("account")}, 403, "plan_required"},
		"unknown field":             {map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "prd", "hash": "x"}, 400, "invalid_argument"},
	} {
		r := s.Call("POST", "/v1/keys:import", token, c.body)
		r.RequireError(t, c.status, c.code, name)
		if sec, _ := c.body["secret"].(string); len(sec) > 12 {
			require.NotContains(t, r.Raw, sec[len(sec)-12:], name+": the secret is never echoed")
		}
	}
	require.Empty(t, s.Must(200, s.Call("GET", "/v1/keys?type=ingest", token, nil)).Get("keys"), "nothing was imported")

	// A key of the current prefix adopts too (from another deployment, say), and works.
	r := s.Must(200, s.Call("POST", "/v1/keys:import", token, map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "prd"}))
	require.Equal(t, "prd", r.Str("key", "environment"))
	require.Equal(t, "ok", s.Verify(token, ingest).Str("code"))
	// A collector key for a server, its project taken from the server.
	c := s.Must(200, s.Call("POST", "/v1/keys:import", token, map[string]any{"type": "collector", "secret": collector, "server_id": srv}))
	require.Equal(t, project, c.Str("key", "project_id"))
	require.Equal(t, srv, s.Verify(token, collector).Str("key", "server_id"))

	// Account keys: the account-key rules of CreateKey (plan, step-up, never by an account key).
	pro, _, plain := s.proAccount("import-pro")
	s.Call("POST", "/v1/keys:import", plain, map[string]any{"type": "account", "secret": gen("account")}).RequireError(t, 403, "step_up_required")
	acct := s.Must(200, s.Call("POST", "/v1/keys:import", pro, map[string]any{"type": "account", "secret": gen("account")}))
	require.Equal(t, "account", acct.Str("key", "type"))
	writer := s.Must(200, s.Call("POST", "/v1/keys", pro, map[string]any{"type": "account", "capabilities": []string{"keys:write"}})).Str("secret")
	s.Call("POST", "/v1/keys:import", writer, map[string]any{"type": "account", "secret": gen("account")}).RequireError(t, 403, "permission_denied")
	reader := s.Must(200, s.Call("POST", "/v1/keys", pro, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).Str("secret")
	s.Call("POST", "/v1/keys:import", reader, map[string]any{"type": "account", "secret": gen("account")}).RequireError(t, 403, "insufficient_capability")
}

// TestImportForServerNeedsServersManage: binding a key to a server through the key API
// needs servers:manage besides keys:write (the servers calls' capability): an account key
// holding keys:read and keys:write only is 403 insufficient_capability naming it, and
// nothing is stored; one holding servers:manage too imports it. Without server_id the
// keys-only key imports as before.
func TestImportForServerNeedsServersManage(t *testing.T) {
	s := startSuite(t)
	token, _, _ := s.proAccount("import-binder")
	project := s.Project(token)
	srv := s.createServer(token, project, "box").Str("server", "id")
	keysOnly := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write"}})).Str("secret")
	manager := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write", "servers:manage"}})).Str("secret")
	gen := func(typ string) string {
		k, err := keyformat.Default().Generate(typ)
		require.NoError(t, err)
		return k
	}
	collector := gen("collector")

	r := s.Call("POST", "/v1/keys:import", keysOnly, map[string]any{"type": "collector", "secret": collector, "server_id": srv})
	r.RequireError(t, 403, "insufficient_capability")
	require.Contains(t, r.Message(), `"servers:manage"`)
	require.NotContains(t, r.Raw, collector[len(collector)-12:])
	require.Equal(t, "not_found", s.Verify(token, collector).Str("code"), "nothing was imported")

	c := s.Must(200, s.Call("POST", "/v1/keys:import", manager, map[string]any{"type": "collector", "secret": collector, "server_id": srv}))
	require.Equal(t, srv, c.Str("key", "server_id"))
	require.Equal(t, srv, s.Verify(token, collector).Str("key", "server_id"))

	ingest := gen("ingest")
	s.Must(200, s.Call("POST", "/v1/keys:import", keysOnly, map[string]any{"type": "ingest", "secret": ingest, "project_id": project, "environment": "prd"}))
}
