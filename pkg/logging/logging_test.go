package logging

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

// The level and format come from the settings; an empty format takes the binary's default.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		s   Config
		def Format
	}{
		{Config{Level: zapcore.WarnLevel}, ""},
		{Config{Level: zapcore.WarnLevel}, Console},
		{Config{Level: zapcore.WarnLevel, Format: JSON}, Console},
	} {
		l, err := New(tc.s, tc.def)
		require.NoError(t, err)
		require.False(t, l.Core().Enabled(zapcore.InfoLevel))
		require.True(t, l.Core().Enabled(zapcore.WarnLevel))
	}
	l, err := New(Config{}, "")
	require.NoError(t, err)
	require.True(t, l.Core().Enabled(zapcore.InfoLevel), "the zero Log is info")
	require.False(t, l.Core().Enabled(zapcore.DebugLevel))
}
