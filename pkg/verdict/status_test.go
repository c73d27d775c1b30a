package verdict_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/pkg/verdict/verdicttest"
)

func TestStatus(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	past, future, zero := now.Add(-time.Microsecond), now.Add(time.Microsecond), time.Time{}
	cases := []struct {
		name                string
		revoked, exp, grace time.Time
		want                verdict.Status
	}{
		{"nothing set", zero, zero, zero, verdict.StatusActive},
		{"expires later", zero, future, zero, verdict.StatusActive},
		{"expires exactly now", zero, now, zero, verdict.StatusExpired},
		{"expired", zero, past, zero, verdict.StatusExpired},
		{"in grace", zero, zero, future, verdict.StatusGrace},
		{"grace ends exactly now", zero, zero, now, verdict.StatusExpired},
		{"grace over", zero, zero, past, verdict.StatusExpired},
		{"in grace, expires later", zero, future, future, verdict.StatusGrace},
		{"in grace but expired", zero, now, future, verdict.StatusExpired},
		{"revoked", past, zero, zero, verdict.StatusRevoked},
		{"revoked at this instant", now, zero, zero, verdict.StatusRevoked},
		{"revoked_at ahead of the clock still revokes", future, zero, zero, verdict.StatusRevoked},
		{"revoked beats expired and grace", past, past, future, verdict.StatusRevoked},
	}
	for _, c := range cases {
		l := verdict.Lifetime{RevokedAt: c.revoked, ExpiresAt: c.exp, GraceUntil: c.grace}
		require.Equal(t, c.want, l.Status(now), c.name)
	}
}

// cases are random lifetimes with the instants they are judged at: every combination of
// unset, before, at and after, for many instants.
func cases(seed uint64) (nows []time.Time, lifetimes []verdict.Lifetime) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	for range 200 {
		now := verdicttest.Now(r)
		for _, l := range verdicttest.Lifetimes(r, now) {
			nows = append(nows, now)
			lifetimes = append(lifetimes, l)
		}
	}
	return nows, lifetimes
}

// TestDecideFollowsStatus: a key's verdict is refused for exactly the keys the status rule
// calls revoked or expired, whatever else is true of it.
func TestDecideFollowsStatus(t *testing.T) {
	nows, lifetimes := cases(1)
	for i, l := range lifetimes {
		f := verdict.Facts{Lifetime: l, Capabilities: []string{"ingest"}}
		require.Equal(t, l.Status(nows[i]).Code(), verdict.Decide(&f, nows[i], "", "ingest"), "%+v at %s", l, nows[i])
	}
}

func orNull(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// TestStatusSQLAgreesWithGo runs StatusSQL in Postgres over every combination of unset,
// before, at and after, at many instants, and requires the answer of Lifetime.Status.
func TestStatusSQLAgreesWithGo(t *testing.T) {
	pool := testutil.DB(t, "verdict")
	nows, lifetimes := cases(2)
	var revoked, expires, grace []*time.Time
	for _, l := range lifetimes {
		revoked = append(revoked, orNull(l.RevokedAt))
		expires = append(expires, orNull(l.ExpiresAt))
		grace = append(grace, orNull(l.GraceUntil))
	}
	q := `SELECT ` + verdict.StatusSQL("judged_at") + ` FROM unnest($1::timestamptz[], $2::timestamptz[],
		$3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY AS k(revoked_at, expires_at, grace_until, judged_at, i)
		ORDER BY i`
	rows, err := pool.Query(context.Background(), q, revoked, expires, grace, nows)
	require.NoError(t, err)
	defer rows.Close()
	i := 0
	for rows.Next() {
		var got string
		require.NoError(t, rows.Scan(&got))
		require.Equal(t, string(lifetimes[i].Status(nows[i])), got, "%+v at %s", lifetimes[i], nows[i])
		i++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(lifetimes), i)
	seen := map[verdict.Status]bool{}
	for i, l := range lifetimes {
		seen[l.Status(nows[i])] = true
	}
	require.Len(t, seen, len(verdict.Statuses()), "the cases reach every status")
}
