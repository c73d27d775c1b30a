package audit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
)

// TestRetentionFollowsThePlan: the periodic job deletes what is past the account's plan's
// period (30 days free, 365 pro; unknown accounts and events with no account count as
// free), oldest first in chain order, and what remains still verifies.
func TestRetentionFollowsThePlan(t *testing.T) {
	e := newEnv(t, withAudit(func(c *audit.Config) { c.RetentionInterval = 50 * time.Millisecond }))
	free, pro := e.accounts.api.SignUp("free"), e.accounts.api.SignUp("pro")
	e.setPlan(pro.AccountID, "pro")
	unknown := ids.New(ids.Account) // well formed, but no such account
	notAnID := "legacy-team-7"      // the accounts service refuses the id itself

	now := time.Now()
	days := func(d int) time.Time { return now.Add(-time.Duration(d) * 24 * time.Hour) }
	add := func(acc string, at time.Time, n int) {
		for i := range n {
			require.True(t, e.appendEvent(event(acc, at.Add(time.Duration(i)*time.Millisecond))))
		}
	}
	for _, acc := range []string{free.AccountID, pro.AccountID, unknown, notAnID, ""} {
		add(acc, days(400), 2)
		add(acc, days(40), 5)
		add(acc, days(10), 3)
		add(acc, now, 2)
	}
	// An old event that arrived late, after younger ones: it stays until they go, so the
	// chain that remains is never holed.
	add(free.AccountID, days(40), 1)

	expect := map[string]int{free.AccountID: 3 + 2 + 1, pro.AccountID: 5 + 3 + 2, unknown: 5, notAnID: 5, "": 5}
	testutil.Eventually(t, 30*time.Second, func() bool {
		for acc, n := range expect {
			if e.count(acc) != n {
				return false
			}
		}
		return true
	}, "retention to apply")
	for _, u := range []testutil.Account{free, pro} {
		ok, checked, bad := e.verify(u.Token)
		require.True(t, ok, bad)
		require.Equal(t, expect[u.AccountID], checked)
	}
	// The chains go on from where they were.
	add(free.AccountID, now, 1)
	ok, checked, bad := e.verify(free.Token)
	require.True(t, ok, bad)
	require.Equal(t, expect[free.AccountID]+1, checked)
}
