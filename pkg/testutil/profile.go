package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// ProfileFile writes the built-in profile named base ("default", "typed", …) with edit
// applied to each of its types (keyformat.Registry.Profile; edit may be nil) to a file of
// the test's, and returns its path for LATCHKEY_KEY_PROFILE: how tests shorten a window
// (claim_grace, session_window, data_ttl) rather than wait it out.
func ProfileFile(t testing.TB, base string, edit func(*keyformat.Type)) string {
	t.Helper()
	reg, err := keyformat.LoadProfile(base)
	require.NoError(t, err)
	b, err := reg.Profile(edit)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), base+".json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}
