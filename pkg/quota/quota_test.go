package quota

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
)

var rotations = Cap{Action: "rotate keys", PerHour: 10}

// take takes one use of c in a transaction of its own that commits.
func take(ctx context.Context, pool *pgxpool.Pool, account string, c Cap) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return Take(ctx, tx, account, c) })
}

// TestCapHoldsUnderConcurrency: fifty concurrent takes against a cap of ten pass exactly
// ten times, whatever the interleaving (as replicas would).
func TestCapHoldsUnderConcurrency(t *testing.T) {
	pool := testutil.DB(t, "quotatest", Migrations)
	ctx := context.Background()
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := take(ctx, pool, "acc_1", rotations)
			switch {
			case err == nil:
				ok.Add(1)
			case apierr.IsCode(err, apierr.RateLimited):
				refused.Add(1)
				e := apierr.FromError(err)
				if e.Metadata["tier"] != "hourly" || e.RetryAfter <= 0 || e.RetryAfter > Window {
					t.Errorf("refusal %+v", e)
				}
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(10), ok.Load(), "passed")
	require.Equal(t, int32(40), refused.Load(), "refused")
	require.NoError(t, take(ctx, pool, "acc_2", rotations), "caps are per account")
	require.NoError(t, take(ctx, pool, "acc_1", Cap{Action: "delete projects", PerHour: 10}), "caps are per action")
	require.NoError(t, take(ctx, pool, "acc_1", Cap{Action: "rotate keys"}), "a cap of 0 is no cap")
}

// TestRolledBackChangeLeavesCapUnspent: a change that fails after taking its use, or that
// a second cap refuses, spends nothing; only committed changes count.
func TestRolledBackChangeLeavesCapUnspent(t *testing.T) {
	pool := testutil.DB(t, "quotatest", Migrations)
	ctx := context.Background()
	one := Cap{Action: "rotate keys", PerHour: 1}
	failed := errors.New("the change failed after the take")
	for range 3 {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			require.NoError(t, Take(ctx, tx, "acc_1", one))
			return failed
		})
		require.ErrorIs(t, err, failed)
	}
	// A second cap refuses after the first was taken: the first is not spent either.
	full := Cap{Action: "create or rotate account keys", PerHour: 1}
	require.NoError(t, take(ctx, pool, "acc_1", full))
	for range 3 {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			require.NoError(t, Take(ctx, tx, "acc_1", one))
			return Take(ctx, tx, "acc_1", full)
		})
		require.True(t, apierr.IsCode(err, apierr.RateLimited), "%v", err)
	}
	require.NoError(t, take(ctx, pool, "acc_1", one), "the cap is still unspent")
	require.True(t, apierr.IsCode(take(ctx, pool, "acc_1", one), apierr.RateLimited), "and now it is spent")
}
