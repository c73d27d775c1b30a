package audit_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/services/audit"
)

// TestReadsAreRateLimited: reads of the log are management calls and go through the same
// token buckets (verify walks a whole chain); the operator, as for keys and accounts, is
// not limited.
func TestReadsAreRateLimited(t *testing.T) {
	e := newEnv(t, withAudit(func(c *audit.Config) {
		c.Limits.PerAccount = ratelimit.Limit{PerSecond: 0.001, Burst: 3}
	}))
	a := e.accounts.api.SignUp("alice")
	for _, path := range []string{"/v1/audit/verify", "/v1/audit/events", "/v1/audit/checkpoints"} {
		e.get(path, a.Token).OK(t)
	}
	r := e.get("/v1/audit/verify", a.Token)
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "account", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	for range 5 {
		e.get("/v1/audit/events?account_id="+a.AccountID, e.operator).OK(t)
	}
}
