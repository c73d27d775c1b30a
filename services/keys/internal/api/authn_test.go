package api_test

import (
	"testing"

	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestStaleTokenDoesNotBlockLogin: a client still sending an old session token can log in
// again; only calls that need a caller refuse the token, with the reason.
func TestStaleTokenDoesNotBlockLogin(t *testing.T) {
	s := startSuite(t)
	email := "stale-" + testutil.Suffix() + "@example.com"
	r := s.Must(200, s.Call("POST", "/v1/accounts", "", map[string]any{"email": email, "password": "Correct-Horse-Battery-9", "account_name": "stale"}))
	old := r.Str("session.token")
	s.Must(200, s.Call("DELETE", "/v1/sessions/current", old, nil))
	s.Call("GET", "/v1/account", old, nil).RequireError(t, 401, "unauthenticated")
	s.Call("GET", "/v1/keys", old, nil).RequireError(t, 401, "unauthenticated")
	login := s.Must(200, s.Call("POST", "/v1/sessions", old, map[string]any{"email": email, "password": "Correct-Horse-Battery-9"}))
	s.Must(200, s.Call("GET", "/v1/keys", login.Str("session.token"), nil))
}
