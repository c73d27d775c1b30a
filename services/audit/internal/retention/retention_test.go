package retention_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/retention"
	"github.com/latchkey/latchkey/services/audit/internal/store"
	"github.com/latchkey/latchkey/services/audit/migrations"
)

// TestPlanUnknownMeansSkip: when the accounts service cannot be asked, an account's events
// are left alone (it might be pro); events with no account need no lookup.
func TestPlanUnknownMeansSkip(t *testing.T) {
	ctx := context.Background()
	url := testutil.DatabaseURL(t)
	owner, err := postgres.Connect(ctx, url, "audit", 2)
	require.NoError(t, err)
	defer owner.Close()
	_, err = postgres.Migrate(ctx, owner, "audit", migrations.FS)
	require.NoError(t, err)
	pool, err := store.Connect(ctx, url, "audit", 2)
	require.NoError(t, err)
	defer pool.Close()
	signer, err := chain.NewSigner(make([]byte, chain.SeedLen))
	require.NoError(t, err)
	st := store.New(pool, store.Checkpoints{Signer: signer})

	old := time.Now().Add(-100 * 24 * time.Hour)
	var evs []chain.Content
	for i, acc := range []string{"acc_01jzzzzzzzzzzzzzzzzzzzzzzz", "", "acc_01jzzzzzzzzzzzzzzzzzzzzzzz", ""} {
		evs = append(evs, chain.Content{ID: "aud_" + string(rune('a'+i)), AccountID: acc, Time: old})
	}
	stored, err := st.Append(ctx, evs)
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, true, true}, stored)

	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	job := &retention.Job{
		Store: st, Accounts: accountsv1.NewInternalServiceClient(conn), Operator: "operator-token-123456",
		Interval: time.Hour, Free: 30 * 24 * time.Hour, Pro: 365 * 24 * time.Hour, Log: zap.NewNop(),
	}
	deleted, err := job.Pass(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, deleted, "the two events with no account")
	var left int
	require.NoError(t, owner.QueryRow(ctx, `SELECT count(*) FROM audit.events`).Scan(&left))
	require.Equal(t, 2, left)
}
