package testutil

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/settings"
)

// ClearSettings empties, for the rest of t, every variable the configuration struct cfg
// points to reads (settings.Vars), so the machine's environment cannot change what the
// test sees: an empty variable counts as unset.
func ClearSettings(t *testing.T, cfg any) {
	t.Helper()
	vars, err := settings.Vars(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		t.Setenv(v.Name, "")
	}
}

// EnvCase is one row of a configuration table test: the variables set, and how the
// configuration they give differs from the defaults.
type EnvCase[C any] struct {
	Name string
	Env  map[string]string
	Want func(*C)
}

// RequireEnvCases runs each case as a subtest: every setting of C cleared, the case's
// variables set, and parse must give defaults as the case's Want changes them.
func RequireEnvCases[C any](t *testing.T, parse func() (C, error), defaults C, cases ...EnvCase[C]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			var zero C
			ClearSettings(t, &zero)
			for k, v := range tc.Env {
				t.Setenv(k, v)
			}
			want := defaults
			if tc.Want != nil {
				tc.Want(&want)
			}
			got, err := parse()
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// RequireBadValuesNamed sets every variable of bad to its value and requires parse to
// fail naming each of them: a misconfigured service says all that is wrong at once.
func RequireBadValuesNamed[C any](t *testing.T, parse func() (C, error), bad map[string]string) {
	t.Helper()
	var zero C
	ClearSettings(t, &zero)
	for k, v := range bad {
		t.Setenv(k, v)
	}
	_, err := parse()
	for k := range bad {
		require.ErrorContains(t, err, k)
	}
}
