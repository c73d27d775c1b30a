package envconfig

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReader(t *testing.T) {
	t.Setenv("EC_STR", "x")
	t.Setenv("EC_DUR", "90s")
	t.Setenv("EC_INT", "7")
	t.Setenv("EC_ON", "true")
	t.Setenv("EC_OFF", "0")
	var r Reader
	require.Equal(t, "x", r.String("EC_STR", "d"))
	require.Equal(t, "d", r.String("EC_UNSET", "d"))
	require.Equal(t, 90*time.Second, r.Duration("EC_DUR", time.Second))
	require.Equal(t, 7, r.Int("EC_INT", 1))
	require.True(t, r.Bool("EC_ON", false))
	require.False(t, r.Bool("EC_OFF", true))
	require.True(t, r.Bool("EC_UNSET", true))
	require.NoError(t, r.Err())
}

// Every bad value is reported at once, by name, and the default stands in for it.
func TestReaderCollectsErrors(t *testing.T) {
	t.Setenv("EC_DUR", "soon")
	t.Setenv("EC_INT", "seven")
	t.Setenv("EC_BOOL", "maybe")
	var r Reader
	require.Equal(t, time.Second, r.Duration("EC_DUR", time.Second))
	require.Equal(t, 1, r.Int("EC_INT", 1))
	require.False(t, r.Bool("EC_BOOL", false))
	err := r.Err()
	for _, name := range []string{"EC_DUR", "EC_INT", "EC_BOOL"} {
		require.ErrorContains(t, err, name)
	}
}
