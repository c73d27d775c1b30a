package devsecret

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKept: a secret is generated once, kept 0600, found again by the next start; a kept
// value that is not valid (a truncated pepper) is replaced.
func TestKept(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "pepper")
	p, err := Pepper(file)
	require.NoError(t, err)
	require.Len(t, p, 48)
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := Pepper(file)
	require.NoError(t, err)
	require.Equal(t, p, again)

	require.NoError(t, os.WriteFile(file, []byte("short\n"), 0o600))
	replaced, err := Pepper(file)
	require.NoError(t, err)
	require.Len(t, replaced, 48)

	k, err := SigningKey(filepath.Join(t.TempDir(), "key"))
	require.NoError(t, err)
	require.True(t, validSigningKey(k))
}
