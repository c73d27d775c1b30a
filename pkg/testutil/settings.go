package testutil

import (
	"testing"

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
