package verdicttest_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/pkg/verdict/verdicttest"
)

// TestLifetimesCoverEveryPlace: the property tests of the status rule lean on Lifetimes
// holding every combination of unset, before, at and after now for each timestamp, on the
// microsecond grid: a generator that lost one would let a disagreement through unseen.
func TestLifetimesCoverEveryPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		now := verdicttest.Now(r)
		at := now.Truncate(time.Microsecond)
		place := func(ts time.Time) int {
			require.Equal(t, ts, ts.Truncate(time.Microsecond), "off the microsecond grid")
			switch {
			case ts.IsZero():
				return 0
			case ts.Before(at):
				return 1
			case ts.Equal(at):
				return 2
			default:
				return 3
			}
		}
		seen := map[[3]int]bool{}
		for _, l := range verdicttest.Lifetimes(r, now) {
			seen[[3]int{place(l.RevokedAt), place(l.ExpiresAt), place(l.GraceUntil)}] = true
		}
		require.Len(t, seen, 64, "every combination of the three timestamps' places")
		statuses := map[verdict.Status]bool{}
		for _, l := range verdicttest.Lifetimes(r, now) {
			statuses[l.Status(now)] = true
		}
		require.Len(t, statuses, len(verdict.Statuses()), "every status is reached")
	}
}
