package allinone

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
)

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
