package allinone

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// TestThrowawayCluster: with no Postgres reachable, make run makes its own from the
// machine's binaries, and removes it on the way out.
func TestThrowawayCluster(t *testing.T) {
	ctx := context.Background()
	url, stop, err := throwawayCluster(ctx, zap.NewNop())
	require.NoError(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var db string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	require.Equal(t, "latchkey", db)
	require.NoError(t, conn.Close(ctx))
	stop()
	_, err = pgx.Connect(ctx, url)
	require.Error(t, err, "the cluster is gone after stop")
}
