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

// TestDeleteServer: deleting a server revokes at once every key bound to it (its current
// key and its predecessor still in rotation grace), each with key.revoked, answers the
// server with deleted_at, and is audited with the keys it revoked; afterwards the server
// is not_found, to a second delete too, and another server is untouched.
func TestDeleteServer(t *testing.T) {
	s := startSuite(t)
	_, js := linktest.Connect(t)
	a := s.SignUp("deleter")
	project := s.Project(a.Token)
	made := s.createServer(a.Token, project, "web-1")
	id, firstKey, firstID := made.Str("server", "id"), made.Str("server", "api_key"), made.Str("server", "key_id")
	rot := s.Must(200, s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}))
	secondKey, secondID := rot.Str("server", "api_key"), rot.Str("server", "key_id")
	keep := s.createServer(a.Token, project, "web-2")
	require.Equal(t, "ok", s.Verify(a.Token, firstKey).Str("code"), "in grace")

	s.Call("DELETE", "/v1/servers/"+id, "", nil).RequireError(t, 401, "unauthenticated")
	d := s.Must(200, s.Call("DELETE", "/v1/servers/"+id, a.Token, nil))
	require.Equal(t, id, d.Str("server", "id"))
	require.NotEmpty(t, d.Str("server", "deleted_at"))
	require.Empty(t, d.Str("server", "api_key"))
	for _, k := range []string{firstKey, secondKey} {
		v := s.Verify(a.Token, k)
		require.Equal(t, "revoked", v.Str("code"))
		require.Equal(t, "server deleted", v.Str("key", "revoke_reason"))
	}
	for _, kid := range []string{firstID, secondID} {
		s.findEvent(js, "key.revoked", func(ev *eventsv1.Event) bool { return ev.GetKeyRevoked().GetKeyId() == kid })
	}
	ev, _ := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "servers.delete" })
	require.Equal(t, id, ev.GetResourceId())
	require.ElementsMatch(t, []string{firstID, secondID}, strings.Split(ev.GetDetails()["revoked_key_ids"], ","))

	s.Call("DELETE", "/v1/servers/"+id, a.Token, nil).RequireError(t, 404, "not_found")
	s.Call("POST", "/v1/servers/"+id+":rotateKey", a.Token, map[string]any{}).RequireError(t, 404, "not_found")
	require.Equal(t, "ok", s.Verify(a.Token, keep.Str("server", "api_key")).Str("code"))

	other, _ := s.signUp("not-the-owner")
	s.Call("DELETE", "/v1/servers/"+keep.Str("server", "id"), other, nil).RequireError(t, 404, "not_found")
	s.Call("DELETE", "/v1/servers/x", a.Token, nil).RequireError(t, 400, "invalid_argument")
	s.Call("DELETE", "/v1/servers/"+firstID, a.Token, nil).RequireError(t, 400, "invalid_argument")
}

// TestServerDeletesCap: deletions per account and hour are capped (tier hourly); a
// refused deletion revokes nothing, and deleting a server that does not exist spends no
// use.
func TestServerDeletesCap(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.ServerDeletesPerHour = 1 })
	token, _ := s.signUp("capped-deletes")
	project := s.Project(token)
	a, b := s.createServer(token, project, "a"), s.createServer(token, project, "b")
	s.Call("DELETE", "/v1/servers/srv_01j00000000000000000000000", token, nil).RequireError(t, 404, "not_found")
	s.Must(200, s.Call("DELETE", "/v1/servers/"+a.Str("server", "id"), token, nil))
	r := s.Call("DELETE", "/v1/servers/"+b.Str("server", "id"), token, nil)
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.Equal(t, "ok", s.Verify(token, b.Str("server", "api_key")).Str("code"), "the refused delete revoked nothing")
	s.Must(200, s.Call("GET", "/v1/servers/"+b.Str("server", "id"), token, nil))
}
