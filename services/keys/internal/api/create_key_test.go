package api_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

// TestAccountKeys covers management keys: the pro plan, step-up, capabilities and the rule
// that an account key never mints another.
func TestAccountKeys(t *testing.T) {
	// The keys service keeps account facts for an hour: the plan change, the suspension
	// and the reinstatement below reach it by their events alone.
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) {
		k.DirectoryTTL = time.Hour
	})
	token, accountID := s.signUp("pro")
	project := s.Project(token)
	create := map[string]any{"type": "account", "name": "ci", "capabilities": []string{"keys:read", "keys:write", "projects:read"}}

	s.Call("POST", "/v1/keys", token, create).RequireError(t, 403, "plan_required")
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Call("POST", "/v1/keys", token, create).Str("error") == "step_up_required"
	}, "the plan change to reach keys")
	s.Call("POST", "/v1/account/verify-password", token, map[string]any{"password": "wrong-password-123"}).RequireError(t, 401, "unauthenticated")
	s.Must(200, s.Call("POST", "/v1/account/verify-password", token, map[string]any{"password": "Correct-Horse-Battery-9"}))
	r := s.Must(200, s.Call("POST", "/v1/keys", token, create))
	acctKey, acctKeyID := r.Str("secret"), r.Str("key.id")
	require.True(t, strings.HasPrefix(acctKey, "lk_acct_"))
	require.Empty(t, r.Str("key.project_id"))

	// The account key manages ingest keys of its account...
	ing := s.Must(200, s.Call("POST", "/v1/keys", acctKey, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}))
	require.Equal(t, acctKeyID, ing.Str("key.created_by"))
	s.Must(200, s.Call("GET", "/v1/keys", acctKey, nil))
	s.Must(200, s.Call("GET", "/v1/projects", acctKey, nil))
	// ...but never mints or rotates an account key, nor widens one.
	s.Call("POST", "/v1/keys", acctKey, create).RequireError(t, 403, "permission_denied")
	s.Call("POST", "/v1/keys/"+acctKeyID+":rotate", acctKey, map[string]any{}).RequireError(t, 403, "permission_denied")
	s.Call("PATCH", "/v1/keys/"+acctKeyID, acctKey, map[string]any{"capabilities": []string{"keys:read", "keys:write", "audit:read"}}).RequireError(t, 403, "permission_denied")
	// An ingest key is no management credential.
	s.Call("GET", "/v1/keys", ing.Str("secret"), nil).RequireError(t, 401, "unauthenticated")

	readOnly := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).Str("secret")
	s.Call("POST", "/v1/keys", readOnly, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}).RequireError(t, 403, "insufficient_capability")
	s.Must(200, s.Call("GET", "/v1/keys", readOnly, nil))

	// Suspended, the account's keys stop authenticating; reinstated, they work again.
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":suspend", s.operator, map[string]any{"reason": "unpaid"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Call("GET", "/v1/keys", acctKey, nil).Str("error") == "account_suspended"
	}, "the suspension to reach keys")
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+accountID+":reinstate", s.operator, map[string]any{}))
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Call("GET", "/v1/keys", acctKey, nil).Status == 200 }, "the reinstatement to reach keys")

	// Revoked, the account key stops authenticating.
	s.Must(200, s.Call("POST", "/v1/keys/"+acctKeyID+":revoke", token, map[string]any{}))
	s.Call("GET", "/v1/keys", acctKey, nil).RequireError(t, 401, "unauthenticated")
}

// TestIdempotentCreate: Stripe's semantics for Idempotency-Key on creating calls.
func TestIdempotentCreate(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("idem")
	project := s.Project(token)
	body := map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "name": "once"}

	// Twenty concurrent duplicates create one key, and all get the same answer.
	replies := make([]testutil.Reply, 20)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = s.Call("POST", "/v1/keys", token, body, "Idempotency-Key", "create-once-1")
		}()
	}
	wg.Wait()
	for _, r := range replies {
		require.Equal(t, 200, r.Status, r.Raw)
		require.Equal(t, replies[0].Str("key.id"), r.Str("key.id"))
		require.Equal(t, replies[0].Str("secret"), r.Str("secret"), "the stored answer, secret included")
	}
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys"), 1)

	// Another caller of the same account, even one allowed to create keys, never gets the
	// stored answer (it would hand over a secret that caller did not make).
	account := s.Must(200, s.Call("GET", "/v1/account", token, nil)).Str("account.id")
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+account+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.Must(200, s.Call("POST", "/v1/account/verify-password", token, map[string]any{"password": "Correct-Horse-Battery-9"}))
	acctKey := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write"}})).Str("secret")
	s.Call("POST", "/v1/keys", acctKey, body, "Idempotency-Key", "create-once-1").RequireError(t, 422, "idempotency_key_reused")

	// Later, the same key and body: the stored answer; another body: 422.
	again := s.Must(200, s.Call("POST", "/v1/keys", token, body, "Idempotency-Key", "create-once-1"))
	require.Equal(t, replies[0].Str("key.id"), again.Str("key.id"))
	other := map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}
	s.Call("POST", "/v1/keys", token, other, "Idempotency-Key", "create-once-1").RequireError(t, 422, "idempotency_key_reused")
	// A refusal is not kept (as with Stripe): fixed, the request runs under the same key.
	bad := map[string]any{"type": "platinum", "project_id": project, "environment": "dev"}
	s.Call("POST", "/v1/keys", token, bad, "Idempotency-Key", "bad-1").RequireError(t, 400, "invalid_argument")
	fixed := map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}
	s.Must(200, s.Call("POST", "/v1/keys", token, fixed, "Idempotency-Key", "bad-1"))
	// Keys are per account: another account's identical key is its own.
	bob, _ := s.signUp("idem-bob")
	bobProject := s.Project(bob)
	s.Must(200, s.Call("POST", "/v1/keys", bob, map[string]any{"type": "ingest", "project_id": bobProject, "environment": "prd"}, "Idempotency-Key", "create-once-1"))
	s.Call("POST", "/v1/keys", token, body, "Idempotency-Key", strings.Repeat("k", 300)).RequireError(t, 400, "invalid_argument")

	// Rotation and project creation honour it too.
	id := replies[0].Str("key.id")
	r1 := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}, "Idempotency-Key", "rotate-1"))
	r2 := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}, "Idempotency-Key", "rotate-1"))
	require.Equal(t, r1.Str("key.id"), r2.Str("key.id"), "one rotation, not two")
	p1 := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "x"}, "Idempotency-Key", "project-1"))
	p2 := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "x"}, "Idempotency-Key", "project-1"))
	require.Equal(t, p1.Str("project.id"), p2.Str("project.id"))

	// The stored answers hold new secrets; the database holds neither them nor the
	// Idempotency-Keys in the clear.
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT key, coalesce(response, ''::bytea) FROM keys.idempotency_keys")
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var key string
		var response []byte
		require.NoError(t, rows.Scan(&key, &response))
		require.NotContains(t, key, "create-once")
		require.NotContains(t, string(response), replies[0].Str("secret"))
		require.NotContains(t, string(response), r1.Str("secret"))
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 4, n, "create-once-1 twice (two accounts), bad-1 once fixed, rotate-1")
}

// TestAnswersMatchReads: the times a create or a rotation answers with are the times a
// later read returns, to the digit (Postgres keeps microseconds; the answer must too).
func TestAnswersMatchReads(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("timestamps")
	project := s.Project(token)
	created := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "t",
		"expires_at": "2099-01-02T03:04:05.123456789Z",
	}))
	id := created.Str("key.id")
	got := s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, created.Str("key.created_at"), got.Str("key.created_at"))
	require.Equal(t, created.Str("key.expires_at"), got.Str("key.expires_at"))

	rotated := s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	previous := s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, rotated.Str("previous.grace_until"), previous.Str("key.grace_until"))
	successor := s.Must(200, s.Call("GET", "/v1/keys/"+rotated.Str("key.id"), token, nil))
	require.Equal(t, rotated.Str("key.created_at"), successor.Str("key.created_at"))
}
