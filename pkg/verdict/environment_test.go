package verdict_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/pkg/verdict"
)

type holdsCase struct {
	name    string
	envs    verdict.Environments
	env     string
	addedAt time.Time
	want    bool
}

func holdsCases() []holdsCase {
	added := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	readded := added.Add(time.Microsecond)
	zero := time.Time{}
	envs := verdict.Environments{"prd": added, "legacy": zero}
	return []holdsCase{
		{"minted in the current stay", envs, "prd", added, true},
		{"the same instant in another zone", envs, "prd", added.In(time.FixedZone("x", 3600)), true},
		{"minted in the stay before, one microsecond earlier", verdict.Environments{"prd": readded}, "prd", added, false},
		{"minted in a later stay than the project says (stale answer)", envs, "prd", readded, false},
		{"environment not listed", envs, "stg", added, false},
		{"environment not listed, key from before stays were recorded", envs, "stg", zero, false},
		{"no environments at all", verdict.Environments{}, "prd", added, false},
		{"key from before stays were recorded, environment listed since", envs, "legacy", zero, true},
		{"key from before stays were recorded, environment added back since", envs, "prd", zero, false},
		{"key of a recorded stay, environment claims no record", envs, "legacy", added, false},
		{"key bound to the whole project", envs, "", zero, true},
		{"key bound to the whole project, no environments", verdict.Environments{}, "", zero, true},
	}
}

// TestEnvironmentsHold: a key works only in the stay of its environment it was minted in,
// to the microsecond.
func TestEnvironmentsHold(t *testing.T) {
	for _, c := range holdsCases() {
		require.Equal(t, c.want, c.envs.Holds(c.env, c.addedAt), c.name)
	}
}

// TestHoldsSQLAgreesWithGo runs HoldsSQL in Postgres over the cases of
// TestEnvironmentsHold and requires Holds's answer.
func TestHoldsSQLAgreesWithGo(t *testing.T) {
	pool := testutil.DB(t, "verdict")
	for _, c := range holdsCases() {
		var env *string
		if c.env != "" {
			env = &c.env
		}
		var addedAt *time.Time
		if !c.addedAt.IsZero() {
			addedAt = &c.addedAt
		}
		var got bool
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT `+verdict.HoldsSQL("$3::jsonb")+
			` FROM (SELECT $1::text AS environment, $2::timestamptz AS environment_added_at) k`,
			env, addedAt, c.envs.JSON()).Scan(&got), c.name)
		require.Equal(t, c.want, got, c.name)
	}
}
