package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// Unreachable tells a database that cannot be reached (nothing listening, a database that
// is gone, a connection the server ended) from one that refused the query.
func TestUnreachable(t *testing.T) {
	ctx := context.Background()

	nobody, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/x?connect_timeout=2")
	require.NoError(t, err)
	defer nobody.Close()
	_, err = nobody.Exec(ctx, "SELECT 1")
	require.Error(t, err)
	require.True(t, postgres.Unreachable(err), "nothing listening: %v", err)

	url := testutil.DatabaseURL(t)
	gone, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	gone.Database += "_never_made"
	_, err = pgx.ConnectConfig(ctx, gone)
	require.True(t, postgres.Unreachable(err), "no such database: %v", err)

	c, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer func() { _ = c.Close(ctx) }()
	_, err = c.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	_, err = c.Exec(ctx, "INSERT INTO t VALUES (1)")
	require.Equal(t, postgres.UniqueViolation, postgres.Code(err))
	require.False(t, postgres.Unreachable(err), "a refused query is not an unreachable database")
	_, err = c.Exec(ctx, "SELECT * FROM no_such_table")
	require.False(t, postgres.Unreachable(err))

	_, err = c.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
	require.Error(t, err)
	require.True(t, postgres.Unreachable(err), "the server ended the connection: %v", err)
}
