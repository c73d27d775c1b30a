package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys/migrations"
)

// TestStatusFilterMatchesStatus: the SQL that filters listings by status and the Go that
// reports a key's status must agree on every combination of timestamps.
func TestStatusFilterMatchesStatus(t *testing.T) {
	ctx := context.Background()
	pool := testutil.DB(t, "keys", outbox.Migrations, migrations.FS)
	s := New(pool, testutil.Namespace(t))
	now := time.Now()
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	times := []*time.Time{nil, &past, &future}
	want := map[string]string{}
	for _, revoked := range []*time.Time{nil, &past} {
		for _, expires := range times {
			for _, grace := range times {
				hash := make([]byte, 32)
				_, _ = rand.Read(hash)
				k := &Key{
					ID: ids.New(ids.Key), AccountID: "acc_1", Type: "ingest", Hash: hash, DisplayPrefix: "lk_ing_x",
					Capabilities: []string{"ingest"}, CreatedBy: "usr_1", ExpiresAt: expires, CreatedAt: now,
				}
				require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if err := insert(ctx, tx, k); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, "UPDATE keys SET revoked_at = $2, grace_until = $3 WHERE id = $1", k.ID, revoked, grace)
					return err
				}))
				k.RevokedAt, k.GraceUntil = revoked, grace
				want[k.ID] = k.Status(now)
			}
		}
	}
	got := map[string]string{}
	for _, status := range []string{StatusActive, StatusGrace, StatusRevoked, StatusExpired} {
		keys, _, err := s.List(ctx, "acc_1", Filter{Status: status, Limit: 100})
		require.NoError(t, err)
		for _, k := range keys {
			require.Equal(t, status, k.Status(now), "key %s listed as %s", k.ID, status)
			got[k.ID] = status
		}
	}
	require.Equal(t, want, got, "every key is listed under exactly its status")
	none, _, err := s.List(ctx, "acc_other", Filter{Limit: 100})
	require.NoError(t, err)
	require.Empty(t, none, "listing is scoped to the account")
	require.Len(t, want, 18, fmt.Sprint(want))
}
