// Package verdicttest makes key lifetimes for property tests of the status rule
// (verdict.Lifetime.Status): every other form of the rule, the SQL of verdict.StatusSQL as
// Postgres runs it and the gateway's decision, must agree with it on each of them.
package verdicttest

import (
	"math/rand/v2"
	"time"

	"github.com/latchkey/latchkey/pkg/verdict"
)

// Now returns a random instant between 2020 and 2040: a third of them whole seconds, a
// third on the microsecond (what Postgres stores), a third with nanoseconds.
func Now(r *rand.Rand) time.Time {
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	t := base.Add(time.Duration(r.Int64N(int64(20 * 365 * 24 * time.Hour))))
	switch r.IntN(3) {
	case 0:
		return t.Truncate(time.Second)
	case 1:
		return t.Truncate(time.Microsecond)
	default:
		return t
	}
}

// Lifetimes returns 64 lifetimes judged at now: every combination of each of the three
// timestamps unset, before now, at now and after now, the distances drawn from r (one
// microsecond, under a second, or up to ten years). Every timestamp is on the microsecond
// grid, as Postgres keeps it; "at now" is now itself when now is on the grid, else the
// last microsecond before it, the nearest a stored value comes.
func Lifetimes(r *rand.Rand, now time.Time) []verdict.Lifetime {
	at := now.Truncate(time.Microsecond)
	pick := func(place int) time.Time {
		switch place {
		case 0:
			return time.Time{}
		case 1:
			return at.Add(-distance(r))
		case 2:
			return at
		default:
			return at.Add(distance(r))
		}
	}
	out := make([]verdict.Lifetime, 0, 64)
	for revoked := range 4 {
		for expires := range 4 {
			for grace := range 4 {
				out = append(out, verdict.Lifetime{RevokedAt: pick(revoked), ExpiresAt: pick(expires), GraceUntil: pick(grace)})
			}
		}
	}
	return out
}

func distance(r *rand.Rand) time.Duration {
	switch r.IntN(3) {
	case 0:
		return time.Microsecond
	case 1:
		return time.Duration(1+r.Int64N(int64(time.Second/time.Microsecond))) * time.Microsecond
	default:
		return time.Duration(1+r.Int64N(int64(10*365*24*time.Hour/time.Microsecond))) * time.Microsecond
	}
}
