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
	"github.com/latchkey/latchkey/pkg/testutil"
)

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

// TestManagementRateLimits: the token buckets refuse exactly what exceeds them, with the
// tier and Retry-After.
func TestManagementRateLimits(t *testing.T) {
	slow := ratelimit.Limit{PerSecond: 0.01, Burst: 5}
	s := startSuite(t, withConfig(func(a *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.Limits = limits.Config{PerAccount: slow}
	}))
	token, _ := s.signUp("limited")
	statuses := make([]testutil.Reply, 20)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() { defer wg.Done(); statuses[i] = s.Call("GET", "/v1/keys", token, nil) }()
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, r := range statuses {
		switch r.Status {
		case 200:
			ok++
		case 429:
			limited++
			r.RequireError(t, 429, "rate_limited")
			require.Equal(t, "account", r.Str("tier"))
			require.NotEmpty(t, r.Header.Get("Retry-After"))
			require.Positive(t, r.Get("retry_after_seconds"))
		default:
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
	}
	require.Equal(t, 5, ok, "exactly the burst passes")
	require.Equal(t, 15, limited)

	s2 := startSuite(t, withConfig(func(a *accountsConfig, _ *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		a.Limits = limits.Config{PerIP: ratelimit.Limit{PerSecond: 0.01, Burst: 3}}
	}))
	for range 3 {
		s2.Call("GET", "/v1/account", "", nil).RequireError(t, 401, "unauthenticated")
	}
	r := s2.Call("GET", "/v1/account", "", nil)
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "ip", r.Str("tier"))
}

// TestHourlyCaps: rotations per account and hour are capped, with the hour's end as
// Retry-After.
func TestHourlyCaps(t *testing.T) {
	s := startSuite(t, withConfig(func(a *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.RotationsPerHour = 2
		a.ProjectChangesPerHour = 2
	}))
	token, _ := s.signUp("capped")
	project := s.Project(token)
	id, _ := s.IngestKey(token, project)
	for range 2 {
		id = s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).Str("key.id")
	}
	r := s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "hourly", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "second"}))
	s.Call("POST", "/v1/projects", token, map[string]any{"name": "third"}).RequireError(t, 429, "rate_limited")
}
