package server

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func TestCommandDispatch(t *testing.T) {
	var served, migrated bool
	c := Command{
		Name:    "svc",
		Serve:   func(context.Context, *zap.Logger) error { served = true; return nil },
		Migrate: func(context.Context) ([]string, error) { migrated = true; return []string{"0001"}, nil },
	}
	require.NoError(t, c.main(nil, nil))
	require.True(t, served)
	require.NoError(t, c.main(nil, []string{"migrate"}))
	require.True(t, migrated)
	require.ErrorContains(t, c.main(nil, []string{"serve", "--now"}), "usage: svc [migrate]")
	bad := errors.New("LATCHKEY_PEPPER must be set")
	require.ErrorIs(t, c.main(bad, nil), bad, "a configuration error is reported before anything runs")

	c.Migrate = nil
	require.ErrorContains(t, c.main(nil, []string{"migrate"}), "takes no arguments")
}
