package api_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestSuspendedAccountKeysStopVerifying(t *testing.T) {
	s := startSuite(t)
	token, accountID := s.signUp("suspend")
	_, secret := s.IngestKey(token, s.Project(token))
	require.Equal(t, "ok", s.Verify(s.operator, secret).Str("code"))
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":suspend", s.operator, map[string]any{"reason": "abuse"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Verify(s.operator, secret).Str("code") == "account_suspended"
	}, "suspension to reach keys")
}

func TestLastUsedAtIsKept(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("usage")
	id, secret := s.IngestKey(token, s.Project(token))
	require.Empty(t, s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil)).Str("key.last_used_at"))
	s.Verify(s.operator, secret)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil)).Str("key.last_used_at") != ""
	}, "last_used_at to be written")
}
