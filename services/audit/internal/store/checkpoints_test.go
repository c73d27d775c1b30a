package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
	"github.com/latchkey/latchkey/services/audit/migrations"
)

// TestCheckpoints: an append that leaves a chain Every or more events past its last
// checkpoint signs its head in the same transaction; CheckpointHeads signs every head that moved since, and nothing when none
// did; ListCheckpoints pages through them in chain order, each valid under the signer.
func TestCheckpoints(t *testing.T) {
	ctx := context.Background()
	pool := testutil.DB(t, "audit", migrations.FS)
	seed, err := chain.DeriveSeed("checkpoints-test-secret")
	require.NoError(t, err)
	signer, err := chain.NewSigner(seed)
	require.NoError(t, err)
	st := store.New(pool, store.Checkpoints{Signer: signer, Every: 3})

	account, other := ids.New(ids.Account), ids.New(ids.Account)
	appendN := func(accountID string, n int) {
		evs := make([]chain.Content, n)
		for i := range evs {
			evs[i] = chain.Content{ID: ids.New(ids.Audit), Time: time.Now(), AccountID: accountID, Action: "keys.create", Result: "ok"}
		}
		stored, err := st.Append(ctx, evs)
		require.NoError(t, err)
		require.NotContains(t, stored, false)
	}
	appendN(account, 2) // 2 past none: not yet
	appendN(account, 2) // 4: signed by the append
	appendN(account, 2) // 6, 2 past 4: not yet
	appendN(other, 1)

	signed, err := st.CheckpointHeads(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, signed, "the account's head at 6 and the other's at 1")
	signed, err = st.CheckpointHeads(ctx)
	require.NoError(t, err)
	require.Zero(t, signed, "no head moved")

	var seqs []int64
	after := store.CheckpointPosition{}
	for {
		page, err := st.ListCheckpoints(ctx, account, after, 1)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		c := page[0]
		require.Equal(t, account, c.AccountID, "one account's checkpoints only")
		require.Equal(t, chain.KindHead, c.Kind)
		require.True(t, signer.Valid(&c), "checkpoint at %d", c.Sequence)
		seqs = append(seqs, c.Sequence)
		after = store.CheckpointPosition{Sequence: c.Sequence, Kind: c.Kind}
	}
	require.Equal(t, []int64{4, 6}, seqs)
}
