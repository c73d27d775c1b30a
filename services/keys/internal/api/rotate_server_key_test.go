package api_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// TestRotateServerKey: the server's key is rotated with the type's grace (24h): the
// answer is the server with the new key's id and plaintext, and the old key, in grace;
// both keys work and are bound to the server; key.rotated is written and the call audited.
// A rotation through POST /v1/keys/{id}:rotate moves the server to its successor too.
func TestRotateServerKey(t *testing.T) {
	s := startSuite(t)
	_, js := linktest.Connect(t)
	a := s.SignUp("rotator")
	made := s.createServer(a.Token, s.Project(a.Token), "web-1")
	id, oldKey, oldID := made.Str("server", "id"), made.Str("server", "api_key"), made.Str("server", "key_id")

	r := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	newKey, newID := r.Str("server", "api_key"), r.Str("server", "key_id")
	require.True(t, strings.HasPrefix(newKey, "lk_srv_"))
	require.NotEqual(t, oldKey, newKey)
	require.NotEqual(t, oldID, newID)
	require.Equal(t, id, r.Str("server", "id"))
	require.Equal(t, made.Str("server", "name"), r.Str("server", "name"))
	require.Equal(t, newKey[:len("lk_srv_")+8], r.Str("server", "key_display_prefix"))
	require.Equal(t, oldID, r.Str("previous", "id"))
	require.Equal(t, "grace", r.Str("previous", "status"))
	require.Equal(t, newID, r.Str("previous", "rotated_to_id"))
	require.NotEmpty(t, r.Str("previous", "grace_until"))
	for _, k := range []string{oldKey, newKey} {
		v := s.Verify(a.Token, k)
		require.Equal(t, "ok", v.Str("code"))
		require.Equal(t, id, v.Str("key", "server_id"))
	}
	require.Equal(t, newID, s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil)).Str("server", "key_id"))
	rotated := s.findEvent(js, "key.rotated", func(ev *eventsv1.Event) bool { return ev.GetKeyRotated().GetKeyId() == oldID })
	require.Equal(t, newID, rotated.GetKeyRotated().GetNewKeyId())
	ev, _ := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "servers.rotate_key" })
	require.Equal(t, id, ev.GetResourceId())
	require.Equal(t, newID, ev.GetDetails()["new_key_id"])
	require.Equal(t, oldID, ev.GetDetails()["previous_key_id"])

	// The key API rotates it too, and the server follows.
	k := s.Must(200, s.Call("POST", "/v1/keys/"+newID+":rotate", a.Token, map[string]any{"grace_period_seconds": 0}))
	require.Equal(t, id, k.Str("key", "server_id"))
	require.Equal(t, k.Str("key", "id"), s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil)).Str("server", "key_id"))

	// A server whose key was revoked by the key API shows it, and :rotateKey mints it a
	// fresh one (TestRotateServerKeyAfterLeak).
	s.Must(200, s.Call("DELETE", "/v1/keys/"+k.Str("key", "id"), a.Token, nil))
	require.Equal(t, "revoked", s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil)).Str("server", "key_status"))
	fresh := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	require.Equal(t, id, fresh.Str("server", "id"))
	require.Equal(t, "active", fresh.Str("server", "key_status"))
	require.Equal(t, k.Str("key", "id"), fresh.Str("previous", "id"))
	require.Equal(t, "revoked", fresh.Str("previous", "status"))
	require.Equal(t, "ok", s.Verify(a.Token, fresh.Str("server", "api_key")).Str("code"))
}

// TestRotateServerKeyAfterLeak: a server whose current key a leak report revoked (reason
// exposed) shows key_status revoked, and :rotateKey mints it a fresh key: the same server
// (id, name), the new key as its key_id with the plaintext in api_key, previous the dead
// key as it is (revoked, no grace, no successor), the new key ingesting for the server and
// the dead one still refused; key.created names the server and the call is audited as
// servers.rotate_key. A key revoked with :revoke is replaced alike, and the fresh key
// rotates again as usual (with grace).
func TestRotateServerKeyAfterLeak(t *testing.T) {
	github := newReporter(t, "github-1")
	s := startSuite(t, withScanning(t, github))
	_, js := linktest.Connect(t)
	a := s.SignUp("leaked-fleet")
	made := s.createServer(a.Token, s.Project(a.Token), "web-1")
	id, leaked, leakedID := made.Str("server", "id"), made.Str("server", "api_key"), made.Str("server", "key_id")
	require.Equal(t, "active", made.Str("server", "key_status"))

	fb := s.signedReport(github, leak(leaked))
	require.Equal(t, "true_positive", fb[0].Label)
	got := s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil))
	require.Equal(t, leakedID, got.Str("server", "key_id"))
	require.Equal(t, "revoked", got.Str("server", "key_status"))
	listed := s.Must(200, s.Call("GET", "/v1/servers", a.Token, nil)).Get("servers").([]any)
	require.Len(t, listed, 1)
	require.Equal(t, "revoked", listed[0].(map[string]any)["key_status"])

	r := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	fresh, freshID := r.Str("server", "api_key"), r.Str("server", "key_id")
	require.True(t, strings.HasPrefix(fresh, "lk_srv_"))
	require.NotEqual(t, leakedID, freshID)
	require.Equal(t, id, r.Str("server", "id"))
	require.Equal(t, "web-1", r.Str("server", "name"))
	require.Equal(t, "active", r.Str("server", "key_status"))
	require.Equal(t, fresh[:len("lk_srv_")+8], r.Str("server", "key_display_prefix"))
	require.Equal(t, leakedID, r.Str("previous", "id"))
	require.Equal(t, "revoked", r.Str("previous", "status"))
	require.Equal(t, "exposed", r.Str("previous", "revoke_reason"))
	require.Nil(t, r.Get("previous", "grace_until"))
	require.Empty(t, r.Str("previous", "rotated_to_id"))

	v := s.Verify(a.Token, fresh)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, id, v.Str("key", "server_id"))
	require.Equal(t, "revoked", s.Verify(a.Token, leaked).Str("code"))
	got = s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil))
	require.Equal(t, freshID, got.Str("server", "key_id"))
	require.Equal(t, "active", got.Str("server", "key_status"))
	require.Empty(t, got.Str("server", "api_key"))

	created := s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == freshID })
	require.Equal(t, id, created.GetKeyCreated().GetServerId())
	ev, raw := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool {
		return ev.GetAction() == "servers.rotate_key" && ev.GetDetails()["new_key_id"] == freshID
	})
	require.Equal(t, id, ev.GetResourceId())
	require.Equal(t, leakedID, ev.GetDetails()["previous_key_id"])
	require.Equal(t, "revoked", ev.GetDetails()["previous_key_status"])
	require.NotContains(t, string(raw), fresh[len("lk_srv_"):])

	// Revoked by :revoke: replaced alike; then an ordinary rotation, with grace.
	s.Must(200, s.Call("POST", "/v1/keys/"+freshID+":revoke", a.Token, map[string]any{"reason": "decommissioned agent"}))
	again := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	require.Equal(t, freshID, again.Str("previous", "id"))
	require.Equal(t, "revoked", again.Str("previous", "status"))
	next := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	require.Equal(t, again.Str("server", "key_id"), next.Str("previous", "id"))
	require.Equal(t, "grace", next.Str("previous", "status"))
	require.Equal(t, "grace", s.Must(200, s.Call("GET", "/v1/keys/"+again.Str("server", "key_id"), a.Token, nil)).Str("key", "status"))
	require.Equal(t, "active", s.Must(200, s.Call("GET", "/v1/servers/"+id, a.Token, nil)).Str("server", "key_status"))
}

// TestRotateServerKeyAfterRevokeCapped: the replacement of a dead key takes the hourly
// server-rotations cap as a rotation does (LATCHKEY_CAP_SERVER_ROTATIONS_PER_HOUR), and a
// deleted server is not_found, dead key or not.
func TestRotateServerKeyAfterRevokeCapped(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.ServerRotationsPerHour = 1 })
	token, _ := s.signUp("dead-capped")
	made := s.createServer(token, s.Project(token), "one")
	id := made.Str("server", "id")
	s.Must(200, s.Call("DELETE", "/v1/keys/"+made.Str("server", "key_id"), token, nil))
	first := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", token, map[string]any{}))
	s.Must(200, s.Call("DELETE", "/v1/keys/"+first.Str("server", "key_id"), token, nil))
	r := s.Call("POST", "/v1/servers/"+id+":rotateKey", token, map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.Equal(t, first.Str("server", "key_id"), s.Must(200, s.Call("GET", "/v1/servers/"+id, token, nil)).Str("server", "key_id"), "a refused call moves nothing")
	s.Must(200, s.Call("DELETE", "/v1/servers/"+id, token, nil))
	s.Call("POST", "/v1/servers/"+id+":rotateKey", token, map[string]any{}).RequireError(t, 404, "not_found")
}

// TestRotateServerKeyCapAndReplay: the eleventh rotation in an hour is 429 tier hourly
// (LATCHKEY_CAP_SERVER_ROTATIONS_PER_HOUR's default, 10, per account across servers); a
// replay under the same Idempotency-Key gets the stored answer without rotating again,
// and another body under it is 422; bad input is 400.
func TestRotateServerKeyCapAndReplay(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("rotations")
	project := s.Project(token)
	one, two := s.createServer(token, project, "one").Str("server", "id"), s.createServer(token, project, "two").Str("server", "id")

	first := s.Must(200, s.Call("POST", "/v1/servers/"+one+":rotateKey", token, map[string]any{}, "Idempotency-Key", "rot-1"))
	replay := s.Must(200, s.Call("POST", "/v1/servers/"+one+":rotateKey", token, map[string]any{}, "Idempotency-Key", "rot-1"))
	require.Equal(t, first.Raw, replay.Raw)
	require.Equal(t, first.Str("server", "key_id"), s.Must(200, s.Call("GET", "/v1/servers/"+one, token, nil)).Str("server", "key_id"))
	s.Call("POST", "/v1/servers/"+two+":rotateKey", token, map[string]any{}, "Idempotency-Key", "rot-1").RequireError(t, 422, "idempotency_key_reused")

	for i := 1; i < 10; i++ {
		id := one
		if i%2 == 0 {
			id = two
		}
		s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", token, map[string]any{}))
	}
	r := s.Call("POST", "/v1/servers/"+two+":rotateKey", token, map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.Contains(t, r.Message(), "rotate server keys at most 10 times an hour")

	s.Call("POST", "/v1/servers/nope:rotateKey", token, map[string]any{}).RequireError(t, 400, "invalid_argument")
	s.Call("POST", "/v1/servers/"+one+":rotateKey", token, map[string]any{"grace_period_seconds": 0}).RequireError(t, 400, "invalid_argument")
	other, _ := s.signUp("not-mine")
	s.Call("POST", "/v1/servers/"+one+":rotateKey", other, map[string]any{}).RequireError(t, 404, "not_found")
}
