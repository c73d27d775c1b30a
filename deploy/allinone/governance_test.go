package allinone

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
)

// TestIdempotentCreate: Stripe's semantics for Idempotency-Key on creating calls.
func TestIdempotentCreate(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("idem")
	project := s.project(token)
	body := map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "name": "once"}

	// Twenty concurrent duplicates create one key, and all get the same answer.
	replies := make([]reply, 20)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = s.call("POST", "/v1/keys", token, body, "Idempotency-Key", "create-once-1")
		}()
	}
	wg.Wait()
	for _, r := range replies {
		require.Equal(t, 200, r.status, r.raw)
		require.Equal(t, replies[0].str("key.id"), r.str("key.id"))
		require.Equal(t, replies[0].str("secret"), r.str("secret"), "the stored answer, secret included")
	}
	require.Len(t, s.must(200, s.call("GET", "/v1/keys", token, nil)).get("keys"), 1)

	// Another caller of the same account, even one allowed to create keys, never gets the
	// stored answer (it would hand over a secret that caller did not make).
	account := s.must(200, s.call("GET", "/v1/account", token, nil)).str("account.id")
	s.must(200, s.call("POST", "/v1/admin/accounts/"+account+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.must(200, s.call("POST", "/v1/account/verify-password", token, map[string]any{"password": "Correct-Horse-Battery-9"}))
	acctKey := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read", "keys:write"}})).str("secret")
	requireError(t, s.call("POST", "/v1/keys", acctKey, body, "Idempotency-Key", "create-once-1"), 422, "idempotency_key_reused")

	// Later, the same key and body: the stored answer; another body: 422.
	again := s.must(200, s.call("POST", "/v1/keys", token, body, "Idempotency-Key", "create-once-1"))
	require.Equal(t, replies[0].str("key.id"), again.str("key.id"))
	other := map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}
	requireError(t, s.call("POST", "/v1/keys", token, other, "Idempotency-Key", "create-once-1"), 422, "idempotency_key_reused")
	// A refusal is not kept (as with Stripe): fixed, the request runs under the same key.
	bad := map[string]any{"type": "platinum", "project_id": project, "environment": "dev"}
	requireError(t, s.call("POST", "/v1/keys", token, bad, "Idempotency-Key", "bad-1"), 400, "invalid_argument")
	fixed := map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}
	s.must(200, s.call("POST", "/v1/keys", token, fixed, "Idempotency-Key", "bad-1"))
	// Keys are per account: another account's identical key is its own.
	bob, _ := s.signUp("idem-bob")
	bobProject := s.project(bob)
	s.must(200, s.call("POST", "/v1/keys", bob, map[string]any{"type": "ingest", "project_id": bobProject, "environment": "prd"}, "Idempotency-Key", "create-once-1"))
	requireError(t, s.call("POST", "/v1/keys", token, body, "Idempotency-Key", strings.Repeat("k", 300)), 400, "invalid_argument")

	// Rotation and project creation honour it too.
	id := replies[0].str("key.id")
	r1 := s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}, "Idempotency-Key", "rotate-1"))
	r2 := s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}, "Idempotency-Key", "rotate-1"))
	require.Equal(t, r1.str("key.id"), r2.str("key.id"), "one rotation, not two")
	p1 := s.must(200, s.call("POST", "/v1/projects", token, map[string]any{"name": "x"}, "Idempotency-Key", "project-1"))
	p2 := s.must(200, s.call("POST", "/v1/projects", token, map[string]any{"name": "x"}, "Idempotency-Key", "project-1"))
	require.Equal(t, p1.str("project.id"), p2.str("project.id"))

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
		require.NotContains(t, string(response), replies[0].str("secret"))
		require.NotContains(t, string(response), r1.str("secret"))
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 4, n, "create-once-1 twice (two accounts), bad-1 once fixed, rotate-1")
}

// TestManagementRateLimits: the token buckets refuse exactly what exceeds them, with the
// tier and Retry-After.
func TestManagementRateLimits(t *testing.T) {
	slow := ratelimit.Limit{PerSecond: 0.01, Burst: 5}
	s := startSuite(t, withConfig(func(a *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.Limits = limits.Config{PerAccount: slow}
	}))
	token, _ := s.signUp("limited")
	statuses := make([]reply, 20)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() { defer wg.Done(); statuses[i] = s.call("GET", "/v1/keys", token, nil) }()
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, r := range statuses {
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			requireError(t, r, 429, "rate_limited")
			require.Equal(t, "account", r.str("tier"))
			require.NotEmpty(t, r.header.Get("Retry-After"))
			require.Positive(t, r.get("retry_after_seconds"))
		default:
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
	}
	require.Equal(t, 5, ok, "exactly the burst passes")
	require.Equal(t, 15, limited)

	s2 := startSuite(t, withConfig(func(a *accountsConfig, _ *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		a.Limits = limits.Config{PerIP: ratelimit.Limit{PerSecond: 0.01, Burst: 3}}
	}))
	for range 3 {
		requireError(t, s2.call("GET", "/v1/account", "", nil), 401, "unauthenticated")
	}
	r := s2.call("GET", "/v1/account", "", nil)
	requireError(t, r, 429, "rate_limited")
	require.Equal(t, "ip", r.str("tier"))
}

// TestHourlyCaps: rotations per account and hour are capped, with the hour's end as
// Retry-After.
func TestHourlyCaps(t *testing.T) {
	s := startSuite(t, withConfig(func(a *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.RotationsPerHour = 2
		a.ProjectChangesPerHour = 2
	}))
	token, _ := s.signUp("capped")
	project := s.project(token)
	id, _ := s.ingestKey(token, project)
	for range 2 {
		id = s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).str("key.id")
	}
	r := s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})
	requireError(t, r, 429, "rate_limited")
	require.Equal(t, "hourly", r.str("tier"))
	require.NotEmpty(t, r.header.Get("Retry-After"))
	s.must(200, s.call("POST", "/v1/projects", token, map[string]any{"name": "second"}))
	requireError(t, s.call("POST", "/v1/projects", token, map[string]any{"name": "third"}), 429, "rate_limited")
}
