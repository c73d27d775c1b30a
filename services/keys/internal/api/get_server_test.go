package api_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGetServer: one of the account's servers, without its key's plaintext; another
// account's server, an unknown one and a deleted one are 404; a malformed id 400.
func TestGetServer(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("getter")
	made := s.createServer(token, s.Project(token), "web-1")
	id, apiKey := made.Str("server", "id"), made.Str("server", "api_key")

	g := s.Must(200, s.Call("GET", "/v1/servers/"+id, token, nil))
	want := made.Get("server").(map[string]any)
	want["api_key"] = ""
	require.Equal(t, want, g.Get("server"))

	other, _ := s.signUp("stranger")
	s.Call("GET", "/v1/servers/"+id, other, nil).RequireError(t, 404, "not_found")
	s.Call("GET", "/v1/servers/srv_01j00000000000000000000000", token, nil).RequireError(t, 404, "not_found")
	for _, bad := range []string{"nope", "prj_01j00000000000000000000000", "srv_01J00000000000000000000000", apiKey} {
		r := s.Call("GET", "/v1/servers/"+bad, token, nil)
		r.RequireError(t, 400, "invalid_argument", bad)
		require.NotContains(t, r.Raw, apiKey[len("lk_srv_"):], "a pasted key is never echoed")
	}
	s.Must(200, s.Call("DELETE", "/v1/servers/"+id, token, nil))
	s.Call("GET", "/v1/servers/"+id, token, nil).RequireError(t, 404, "not_found")
}
