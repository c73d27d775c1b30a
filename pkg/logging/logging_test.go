package logging

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"

	"github.com/latchkey/latchkey/pkg/settings"
)

// The level and format come from the settings; an empty format takes the binary's default.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		s   settings.Log
		def settings.LogFormat
	}{
		{settings.Log{Level: zapcore.WarnLevel}, ""},
		{settings.Log{Level: zapcore.WarnLevel}, settings.LogConsole},
		{settings.Log{Level: zapcore.WarnLevel, Format: settings.LogJSON}, settings.LogConsole},
	} {
		l, err := New(tc.s, tc.def)
		require.NoError(t, err)
		require.False(t, l.Core().Enabled(zapcore.InfoLevel))
		require.True(t, l.Core().Enabled(zapcore.WarnLevel))
	}
	l, err := New(settings.Log{}, "")
	require.NoError(t, err)
	require.True(t, l.Core().Enabled(zapcore.InfoLevel), "the zero Log is info")
	require.False(t, l.Core().Enabled(zapcore.DebugLevel))
}
