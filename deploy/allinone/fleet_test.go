package allinone

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// fleet is a suite's view of one account's servers: it sends with collector keys and
// reads back which server each stored request carries.
type fleet struct {
	s       *suite
	t       *testing.T
	account string
	project string
	// servers maps each collector key's id to its server's id, as the API answered them.
	servers map[string]string
}

// send posts one small OTLP traces request with key through the gateway and returns the
// status.
func (f *fleet) send(key string) int {
	f.t.Helper()
	return f.s.Send("POST", f.s.ingest+"/v1/traces", key, string(bodyOf(f.t, "traces")), "Content-Type", "application/x-protobuf").Status
}

// stored returns, for each request stored on the project's traces subject, its key id and
// its Latchkey-Server-Id value: the header holds one value per request, aligned with
// Latchkey-Key-Id, whether the gateway sent it alone or merged with others.
func (f *fleet) stored() (keyIDs, serverIDs []string) {
	f.t.Helper()
	for _, m := range f.s.stored(f.s.ingestSubject(f.account, f.project, "_", "traces")) {
		keys, servers := m.Headers().Values("Latchkey-Key-Id"), m.Headers().Values("Latchkey-Server-Id")
		require.Len(f.t, servers, len(keys), "one Latchkey-Server-Id per request: %v", m.Headers())
		keyIDs, serverIDs = append(keyIDs, keys...), append(serverIDs, servers...)
	}
	return keyIDs, serverIDs
}

// requireStoredWithServers requires every stored request to carry its key's server.
func (f *fleet) requireStoredWithServers(atLeast int) {
	f.t.Helper()
	keyIDs, serverIDs := f.stored()
	require.GreaterOrEqual(f.t, len(keyIDs), atLeast)
	for i, k := range keyIDs {
		want, ok := f.servers[k]
		require.True(f.t, ok, "request of key %s, which is no collector key of the fleet", k)
		require.Equal(f.t, want, serverIDs[i], "request %d of key %s", i, k)
	}
}

// TestFleetFlow is the servers scheme of the gmk profile end to end (DESIGN "Seed
// schemes", servers and collector keys): an account on the pro plan mints an account key
// after step-up; with it, 50 servers are created under idempotency keys (a replay answers
// the same body and creates nothing), each with its gmk_cru_live_ collector key, and each
// key's data is stored carrying its server in Latchkey-Server-Id; a collector key is 403
// at every management service; a rotation keeps both keys working through the grace; a
// deleted server's key is refused at once; the eleventh rotation of the hour is 429 tier
// hourly; a legacy col_ key, imported for a server, ingests like the others.
func TestFleetFlow(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, _ *gateway.Config, _ *audit.Config) {
		k.KeyProfile = "gmk"
	}))
	a := s.SignUp("glassmkr")
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+a.AccountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	testutil.Eventually(t, 10*time.Second, func() bool {
		return s.Call("POST", "/v1/keys", a.Token, map[string]any{"type": "account"}).Str("error") == "step_up_required"
	}, "the plan change to reach keys")
	s.Must(200, s.Call("POST", "/v1/account/verify-password", a.Token, map[string]any{"password": a.Password}))
	acct := s.Must(200, s.Call("POST", "/v1/keys", a.Token, map[string]any{"type": "account", "name": "fleet provisioning"})).Str("secret")
	require.True(t, strings.HasPrefix(acct, "gmk_acct_live_"), acct)
	project := s.Must(200, s.Call("POST", "/v1/projects", acct, map[string]any{"name": "production fleet"})).Str("project.id")
	f := &fleet{s: s, t: t, account: a.AccountID, project: project, servers: map[string]string{}}

	// 50 servers, each under its own idempotency key; every answer holds a new collector key.
	type made struct{ id, keyID, apiKey string }
	servers := make([]made, 50)
	body := func(i int) map[string]any {
		return map[string]any{
			"project_id": project, "name": fmt.Sprintf("node-%02d", i), "hostname": fmt.Sprintf("node-%02d.fra.example.net", i),
			"tags": []string{"fra", map[bool]string{true: "db", false: "web"}[i%5 == 0]},
		}
	}
	var replay string
	for i := range servers {
		r := s.Must(200, s.Call("POST", "/v1/servers", acct, body(i), "Idempotency-Key", fmt.Sprintf("provision-node-%02d", i)))
		servers[i] = made{r.Str("server", "id"), r.Str("server", "key_id"), r.Str("server", "api_key")}
		require.True(t, strings.HasPrefix(servers[i].apiKey, "gmk_cru_live_"), servers[i].apiKey)
		f.servers[servers[i].keyID] = servers[i].id
		if i == 7 {
			replay = r.Raw
		}
	}
	again := s.Must(200, s.Call("POST", "/v1/servers", acct, body(7), "Idempotency-Key", "provision-node-07"))
	require.Equal(t, replay, again.Raw, "a replay answers the same body, api_key included")
	s.Call("POST", "/v1/servers", acct, body(8), "Idempotency-Key", "provision-node-07").RequireError(t, 422, "idempotency_key_reused")
	list := s.Must(200, s.Call("GET", "/v1/servers?page_size=100", acct, nil))
	require.Len(t, list.Get("servers"), 50, "the replay created nothing")
	require.NotContains(t, list.Raw, "gmk_cru_live_"+servers[7].apiKey[len("gmk_cru_live_"):len("gmk_cru_live_")+12])
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys?type=ingest&page_size=100", acct, nil)).Get("keys"), 50)
	require.Len(t, s.Must(200, s.Call("GET", "/v1/servers?tag=db", acct, nil)).Get("servers"), 10)

	// Every collector key ingests, concurrently (so requests of several servers share
	// messages), and each stored request carries its own server.
	var wg sync.WaitGroup
	statuses := make([]int, len(servers))
	for i, m := range servers {
		wg.Go(func() { statuses[i] = f.send(m.apiKey) })
	}
	wg.Wait()
	for i, st := range statuses {
		require.Equal(t, 200, st, "server %d", i)
	}
	f.requireStoredWithServers(50)

	// A collector key ingests and does nothing else: each management service says 403.
	for _, path := range []string{"/v1/servers", "/v1/keys", "/v1/projects", "/v1/audit/events"} {
		r := s.Call("GET", path, servers[0].apiKey, nil)
		r.RequireError(t, 403, "permission_denied", path)
		require.Contains(t, r.Message(), "collector key")
	}

	// Rotate: the new key ingests with the same server, the old one through the grace.
	rot := s.Must(200, s.Call("POST", "/v1/servers/"+servers[1].id+":rotateKey", acct, map[string]any{}))
	rotated := rot.Str("server", "api_key")
	require.True(t, strings.HasPrefix(rotated, "gmk_cru_live_"))
	require.Equal(t, servers[1].keyID, rot.Str("previous", "id"))
	require.Equal(t, "grace", rot.Str("previous", "status"))
	f.servers[rot.Str("server", "key_id")] = servers[1].id
	require.Equal(t, 200, f.send(rotated))
	require.Equal(t, 200, f.send(servers[1].apiKey), "the old key works through the type's grace")

	// Delete: the server's key is refused at the gateway at once.
	require.Equal(t, 200, f.send(servers[2].apiKey), "cached at the gateway")
	d := s.Must(200, s.Call("DELETE", "/v1/servers/"+servers[2].id, acct, nil))
	require.NotEmpty(t, d.Str("server", "deleted_at"))
	testutil.Eventually(t, 2*time.Second, func() bool { return f.send(servers[2].apiKey) == 401 }, "the deleted server's key to be refused")
	s.Call("GET", "/v1/servers/"+servers[2].id, acct, nil).RequireError(t, 404, "not_found")

	// Caps: ten rotations an hour, the eleventh refused.
	for i := 3; i < 12; i++ {
		s.Must(200, s.Call("POST", "/v1/servers/"+servers[i].id+":rotateKey", acct, map[string]any{}))
	}
	r := s.Call("POST", "/v1/servers/"+servers[12].id+":rotateKey", acct, map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))

	// A legacy col_ key from the old collector, imported for a server, ingests like any.
	const legacy = "col_fra-node-13_7Hq2xLm9Pw4Rt8Zk"
	imp := s.Must(200, s.Call("POST", "/v1/keys:import", acct, map[string]any{
		"type": "ingest", "secret": legacy, "server_id": servers[13].id, "name": "old collector on node-13",
	}))
	require.NotContains(t, imp.Raw, legacy)
	require.Equal(t, project, imp.Str("key", "project_id"))
	f.servers[imp.Str("key", "id")] = servers[13].id
	require.Equal(t, 200, f.send(legacy))
	s.Call("POST", "/v1/keys:import", acct, map[string]any{"type": "ingest", "secret": legacy, "project_id": project}).RequireError(t, 409, "already_exists")
	f.requireStoredWithServers(50 + 3 + 1)
	keyIDs, serverIDs := f.stored()
	require.Contains(t, keyIDs, imp.Str("key", "id"))
	require.Contains(t, serverIDs, servers[13].id)

	// The audit log has the fleet's calls.
	require.Eventually(t, func() bool {
		count := func(action string) int {
			events, _ := s.Call("GET", "/v1/audit/events?limit=100&action="+action, a.Token, nil).Get("events").([]any)
			return len(events)
		}
		return count("servers.create") >= 50 && count("servers.rotate_key") >= 10 && count("servers.delete") == 1 && count("keys.import") >= 1
	}, 15*time.Second, 100*time.Millisecond)
}

// TestFleetFlowDefaultProfile: the same scheme under the default profile, lk_srv_ keys
// and a session as the caller: create, ingest with the server stamped, rotate, delete.
func TestFleetFlowDefaultProfile(t *testing.T) {
	s := startSuite(t)
	token, account := s.signUp("fleet-default")
	project := s.Project(token)
	f := &fleet{s: s, t: t, account: account, project: project, servers: map[string]string{}}
	var ids []string
	for i := range 3 {
		r := s.Must(200, s.Call("POST", "/v1/servers", token, map[string]any{"project_id": project, "name": fmt.Sprint("box-", i)}))
		key := r.Str("server", "api_key")
		require.True(t, strings.HasPrefix(key, "lk_srv_"), key)
		f.servers[r.Str("server", "key_id")] = r.Str("server", "id")
		ids = append(ids, r.Str("server", "id"))
		require.Equal(t, 200, f.send(key))
	}
	// An ordinary project key sends to its environment's subject, with no server header.
	_, plain := s.IngestKey(token, project)
	require.Equal(t, 200, f.send(plain))
	f.requireStoredWithServers(3)
	for _, m := range s.stored(s.ingestSubject(account, project, "prd", "traces")) {
		require.Empty(t, m.Headers().Values("Latchkey-Server-Id"), "no server, no header")
	}

	rot := s.Must(200, s.Call("POST", "/v1/servers/"+ids[0]+":rotateKey", token, map[string]any{}))
	rotated := rot.Str("server", "api_key")
	f.servers[rot.Str("server", "key_id")] = ids[0]
	require.Equal(t, 200, f.send(rotated))
	s.Must(200, s.Call("DELETE", "/v1/servers/"+ids[0], token, nil))
	testutil.Eventually(t, 2*time.Second, func() bool { return f.send(rotated) == 401 }, "the deleted server's key to be refused")
	f.requireStoredWithServers(4)
}
