package verdict_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/verdict"
)

func TestEnvironmentsHold(t *testing.T) {
	added := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	readded := added.Add(time.Microsecond)
	zero := time.Time{}
	envs := verdict.Environments{"prd": added, "legacy": zero}
	cases := []struct {
		name    string
		envs    verdict.Environments
		env     string
		addedAt time.Time
		want    bool
	}{
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
		{"key bound to the whole project, no environments", nil, "", zero, true},
	}
	for _, c := range cases {
		require.Equal(t, c.want, c.envs.Holds(c.env, c.addedAt), c.name)
	}
}
