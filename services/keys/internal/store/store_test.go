package store

import (
	"context"
	cryptorand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/pkg/verdict/verdicttest"
	"github.com/latchkey/latchkey/services/keys/migrations"
)

// TestStatusFilterMatchesStatus: the SQL that filters listings by status (verdict's rule in
// SQL, run by Postgres) and the Go that reports a key's status must agree on every
// combination of the three timestamps unset, before, exactly at and after the instant the
// listing is judged at, for instants with and without sub-microsecond parts.
func TestStatusFilterMatchesStatus(t *testing.T) {
	ctx := context.Background()
	pool := testutil.DB(t, "keys", outbox.Migrations, migrations.FS)
	s := New(pool, testutil.Namespace(t))
	r := rand.New(rand.NewPCG(7, 8))
	for batch := range 6 {
		now := verdicttest.Now(r)
		account := fmt.Sprintf("acc_%d", batch)
		want := map[string]string{}
		for _, l := range verdicttest.Lifetimes(r, now) {
			hash := make([]byte, 32)
			_, _ = cryptorand.Read(hash)
			k := &Key{
				ID: ids.New(ids.Key), AccountID: account, Type: "ingest", Hash: hash, DisplayPrefix: "lk_ing_x",
				Capabilities: []string{"ingest"}, CreatedBy: "usr_1", ExpiresAt: orNil(l.ExpiresAt), CreatedAt: now,
			}
			require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				if err := insert(ctx, tx, k); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "UPDATE keys SET revoked_at = $2, grace_until = $3 WHERE id = $1", k.ID, orNil(l.RevokedAt), orNil(l.GraceUntil))
				return err
			}))
			want[k.ID] = string(l.Status(now))
		}
		got := map[string]string{}
		for _, status := range []string{StatusActive, StatusGrace, StatusRevoked, StatusExpired} {
			keys, _, err := s.List(ctx, account, Filter{Status: status, At: now, Limit: 100})
			require.NoError(t, err)
			for _, k := range keys {
				require.Equal(t, status, k.Status(now), "key %s listed as %s at %s", k.ID, status, now)
				got[k.ID] = status
			}
		}
		require.Equal(t, want, got, "every key is listed under exactly its status at %s", now)
		require.Len(t, want, 64)
	}
	none, _, err := s.List(ctx, "acc_other", Filter{Limit: 100})
	require.NoError(t, err)
	require.Empty(t, none, "listing is scoped to the account")
}

func orNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
