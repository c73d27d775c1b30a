package allinone

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestAnswersMatchReads: the times a create or a rotation answers with are the times a
// later read returns, to the digit (Postgres keeps microseconds; the answer must too).
func TestAnswersMatchReads(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("timestamps")
	project := s.project(token)
	created := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "t",
		"expires_at": "2099-01-02T03:04:05.123456789Z",
	}))
	id := created.str("key.id")
	got := s.must(200, s.call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, created.str("key.created_at"), got.str("key.created_at"))
	require.Equal(t, created.str("key.expires_at"), got.str("key.expires_at"))

	rotated := s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	previous := s.must(200, s.call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, rotated.str("previous.grace_until"), previous.str("key.grace_until"))
	successor := s.must(200, s.call("GET", "/v1/keys/"+rotated.str("key.id"), token, nil))
	require.Equal(t, rotated.str("key.created_at"), successor.str("key.created_at"))
}
