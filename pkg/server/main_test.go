package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/buildinfo"
	"github.com/latchkey/latchkey/pkg/settings"
)

func TestCommandDispatch(t *testing.T) {
	var served, migrated bool
	c := Command{
		Name:    "svc",
		Serve:   func(context.Context, *zap.Logger) error { served = true; return nil },
		Migrate: func(context.Context) ([]string, error) { migrated = true; return []string{"0001"}, nil },
	}
	require.NoError(t, c.main(nil, nil, io.Discard))
	require.True(t, served)
	require.NoError(t, c.main(nil, []string{"migrate"}, io.Discard))
	require.True(t, migrated)
	require.ErrorContains(t, c.main(nil, []string{"serve", "--now"}, io.Discard), "usage: svc [migrate | settings | --version]")
	bad := errors.New("LATCHKEY_PEPPER must be set")
	require.ErrorIs(t, c.main(bad, nil, io.Discard), bad, "a configuration error is reported before anything runs")

	c.Migrate = nil
	require.ErrorContains(t, c.main(nil, []string{"migrate"}, io.Discard), "takes no other arguments")
}

// --version answers before the configuration is looked at: an image's binary, run with no
// environment at all, still says which build it is.
func TestCommandVersion(t *testing.T) {
	c := Command{
		Name:  "svc",
		Serve: func(context.Context, *zap.Logger) error { t.Fatal("--version must not serve"); return nil },
	}
	for _, arg := range []string{"--version", "-version"} {
		var out bytes.Buffer
		require.NoError(t, c.main(errors.New("LATCHKEY_PEPPER must be set"), []string{arg}, &out))
		require.Equal(t, buildinfo.Line("svc")+"\n", out.String())
	}
}

// `settings` lists the variables as JSON, before the configuration is looked at (the
// environment it is run in is not the one it describes); without Settings it is a usage
// error.
func TestCommandSettings(t *testing.T) {
	c := Command{
		Name:  "svc",
		Serve: func(context.Context, *zap.Logger) error { t.Fatal("settings must not serve"); return nil },
		Settings: func() ([]settings.Var, error) {
			return []settings.Var{{Name: "A", Default: "1", HasDefault: true}, {Name: "B", Required: true}}, nil
		},
	}
	var out bytes.Buffer
	require.NoError(t, c.main(errors.New("LATCHKEY_PEPPER must be set"), []string{"settings"}, &out))
	var got []settings.Var
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	require.Equal(t, []settings.Var{{Name: "A", Default: "1", HasDefault: true}, {Name: "B", Required: true}}, got)
	require.Contains(t, out.String(), `"required": true`)

	c.Settings = nil
	require.ErrorContains(t, c.main(nil, []string{"settings"}, io.Discard), "takes no other arguments")
}
