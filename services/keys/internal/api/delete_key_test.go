package api_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeleteKey: DELETE /v1/keys/{id} revokes like :revoke (immediately, the row kept),
// answers {key}, and is a no-op the second time; bad ids are 400, another account's key
// 404.
func TestDeleteKey(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("delete-key")
	id, secret := s.IngestKey(token, s.Project(token))

	r := s.Must(200, s.Call("DELETE", "/v1/keys/"+id+"?reason=retired", token, nil))
	require.Equal(t, id, r.Str("key", "id"))
	require.Equal(t, "revoked", r.Str("key", "status"))
	require.Equal(t, "retired", r.Str("key", "revoke_reason"))
	require.Equal(t, "revoked", s.Verify(token, secret).Str("code"))
	again := s.Must(200, s.Call("DELETE", "/v1/keys/"+id, token, nil))
	require.Equal(t, r.Str("key", "revoked_at"), again.Str("key", "revoked_at"))
	require.Equal(t, "revoked", s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil)).Str("key", "status"), "kept for history")

	w := s.Must(200, s.Call("DELETE", "/v1/keys/"+s.must2(s.IngestKey(token, s.Project(token)))+"?wait_for_gateways=true&wait_timeout_ms=100", token, nil))
	require.NotNil(t, w.Get("receipt"), "a receipt when asked for")

	other, _ := s.signUp("delete-key-other")
	s.Call("DELETE", "/v1/keys/"+id, other, nil).RequireError(t, 404, "not_found")
	s.Call("DELETE", "/v1/keys/"+id, "", nil).RequireError(t, 401, "unauthenticated")
	for _, q := range []string{"/v1/keys/nope", "/v1/keys/" + secret, "/v1/keys/" + id + "?wait_timeout_ms=40000", "/v1/keys/" + id + "?reason=" + url.QueryEscape("a\x01")} {
		s.Call("DELETE", q, token, nil).RequireError(t, 400, "invalid_argument", q)
	}
}

// must2 returns the first of two values (an id, of IngestKey's id and secret).
func (s *suite) must2(id, _ string) string { return id }
