package migrations_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts/migrations"
)

func TestMigrateTwice(t *testing.T) {
	pool := testutil.DB(t, "accounts", outbox.Migrations, migrations.FS)
	applied, err := postgres.Migrate(context.Background(), pool, "accounts", outbox.Migrations, migrations.FS)
	require.NoError(t, err)
	require.Empty(t, applied)
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*) FROM information_schema.tables WHERE table_schema = 'accounts'
		 AND table_name IN ('accounts', 'users', 'sessions', 'projects', 'outbox')`).Scan(&n))
	require.Equal(t, 5, n)
}
