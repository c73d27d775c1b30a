package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// asSuperuser runs sql in one transaction as the database's superuser with the append-only
// triggers switched off (session_replication_role = replica), as an intruder with the
// database but not the service's signing key would.
func (e *env) asSuperuser(fn func(tx pgx.Tx) error) {
	e.t.Helper()
	ctx := context.Background()
	require.NoError(e.t, pgx.BeginFunc(ctx, e.super, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		return fn(tx)
	}))
}

// checkpoints reads the account's checkpoints through GET /v1/audit/checkpoints, every
// page, and checks each signature under the public key the service publishes.
func (e *env) checkpoints(token string) []chain.Checkpoint {
	e.t.Helper()
	var out []chain.Checkpoint
	q := "limit=1"
	for page := 0; ; page++ {
		require.Less(e.t, page, 1000)
		b := e.get("/v1/audit/checkpoints?"+q, token).OK(e.t)
		pub, err := base64.StdEncoding.DecodeString(testutil.Str(b, "public_key"))
		require.NoError(e.t, err)
		list, _ := b["checkpoints"].([]any)
		for _, v := range list {
			m := v.(map[string]any)
			at, err := time.Parse(time.RFC3339Nano, testutil.Str(m, "signed_at"))
			require.NoError(e.t, err)
			c := chain.Checkpoint{
				AccountID: testutil.Str(m, "account_id"), Kind: testutil.Str(m, "kind"), Hash: testutil.Str(m, "hash"), SignedAt: at,
				PublicKey: testutil.Str(m, "public_key"), Signature: testutil.Str(m, "signature"),
			}
			_, err = fmt.Sscan(fmt.Sprint(m["sequence"]), &c.Sequence)
			require.NoError(e.t, err)
			sig, err := base64.StdEncoding.DecodeString(c.Signature)
			require.NoError(e.t, err)
			require.True(e.t, ed25519.Verify(pub, c.Message(), sig), "checkpoint %+v", c)
			out = append(out, c)
		}
		next := testutil.Str(b, "next_after_kind")
		if next == "" {
			return out
		}
		var seq int64
		_, err = fmt.Sscan(fmt.Sprint(b["next_after_sequence"]), &seq)
		require.NoError(e.t, err)
		q = "limit=1&after_kind=" + next + "&after_sequence=" + strconv.FormatInt(seq, 10)
	}
}

// verifyProblem calls GET /v1/audit/verify and returns what it says is wrong.
func (e *env) verifyProblem(token string) (ok bool, firstBad, problem string) {
	e.t.Helper()
	b := e.get("/v1/audit/verify", token).OK(e.t)
	return b["ok"] == true, testutil.Str(b, "first_bad_id"), testutil.Str(b, "problem")
}

// TestSignedCheckpointsCatchARewrite: a superuser who rewrites the chain from event k on
// and recomputes every hash (and the head) consistently is caught by the first signed
// head checkpoint at or after k; a checkpoint they forge does not verify.
func TestSignedCheckpointsCatchARewrite(t *testing.T) {
	e := newEnv(t, withAudit(func(c *audit.Config) { c.CheckpointEvery = 4 }))
	a := e.accounts.api.SignUp("alice")
	for i := range 10 {
		require.True(t, e.appendEvent(event(a.AccountID, time.Now().Add(time.Duration(i)*time.Millisecond))))
	}
	cps := e.checkpoints(a.Token)
	require.Len(t, cps, 2, "heads signed at 4 and 8 events")
	require.Equal(t, []int64{4, 8}, []int64{cps[0].Sequence, cps[1].Sequence})
	stored := e.storedChain(a.AccountID)
	require.Equal(t, stored[3].Hash, cps[0].Hash)
	ok, bad, problem := e.verifyProblem(a.Token)
	require.True(t, ok, "%s: %s", bad, problem)

	// Another account cannot read them; a request for them needs a caller.
	b := e.accounts.api.SignUp("bob")
	e.get("/v1/audit/checkpoints?account_id="+a.AccountID, b.Token).RequireError(t, 403, apierr.PermissionDenied)
	e.get("/v1/audit/checkpoints", "").RequireError(t, 401, apierr.Unauthenticated)
	require.Empty(t, e.checkpoints(b.Token))

	// Rewrite from event 3 on, every hash recomputed so each link holds.
	const k = 3
	ctx := context.Background()
	e.asSuperuser(func(tx pgx.Tx) error {
		prev := stored[k-2].Hash
		for i := k - 1; i < len(stored); i++ {
			ev := stored[i]
			if i == k-1 {
				ev.ResourceID = "key_forged"
			}
			ev.PrevHash = prev
			ev.Hash = chain.NewHasher().Hash(prev, &ev.Content)
			prev = ev.Hash
			if _, err := tx.Exec(ctx, `UPDATE audit.events SET resource_id = $2, prev_hash = $3, hash = $4 WHERE id = $1`,
				ev.ID, ev.ResourceID, ev.PrevHash, ev.Hash); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE audit.chain_heads SET hash = $2 WHERE account_id = $1`, a.AccountID, prev)
		return err
	})
	ok, bad, problem = e.verifyProblem(a.Token)
	require.False(t, ok, "a consistent rewrite from event %d on verified", k)
	require.Equal(t, stored[3].ID, bad, "named at the first checkpoint after the rewrite")
	require.Contains(t, problem, "checkpoint")

	// A checkpoint for the rewritten chain, without the key: its signature fails.
	forged := e.storedChain(a.AccountID)
	e.asSuperuser(func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE audit.checkpoints SET hash = $2 WHERE account_id = $1 AND sequence = 4`, a.AccountID, forged[3].Hash)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE audit.checkpoints SET hash = $2 WHERE account_id = $1 AND sequence = 8`, a.AccountID, forged[7].Hash)
		return err
	})
	ok, _, problem = e.verifyProblem(a.Token)
	require.False(t, ok)
	require.Contains(t, problem, "signature")
}

// TestDeletingTheOldestEventsIsCaught: removing the oldest events by hand fails
// verification; retention, which records a signed cut where it deletes, does not; and
// removing more than the cut says fails again.
func TestDeletingTheOldestEventsIsCaught(t *testing.T) {
	e := newEnv(t, withAudit(func(c *audit.Config) { c.RetentionInterval = 50 * time.Millisecond }))
	a := e.accounts.api.SignUp("alice")
	old := time.Now().Add(-40 * 24 * time.Hour)
	var stored []string
	for i := range 8 {
		at := old // free plan: 30 days, so the first three go
		if i >= 3 {
			at = time.Now().Add(-time.Hour)
		}
		ev := event(a.AccountID, at.Add(time.Duration(i)*time.Millisecond))
		require.True(t, e.appendEvent(ev))
		stored = append(stored, ev.GetId())
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return e.count(a.AccountID) == 5 }, "retention to apply")
	ok, bad, problem := e.verifyProblem(a.Token)
	require.True(t, ok, "legitimate retention: %s %s", bad, problem)
	var cuts []chain.Checkpoint
	for _, c := range e.checkpoints(a.Token) {
		if c.Kind == chain.KindCut {
			cuts = append(cuts, c)
		}
	}
	// Retention may have run while the old events were still being appended, cutting
	// twice: each run signs its own cut, and the newest names the first event kept.
	require.NotEmpty(t, cuts)
	require.EqualValues(t, 4, cuts[len(cuts)-1].Sequence, "the first event kept")

	// One more of the oldest, by hand.
	e.asSuperuser(func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `DELETE FROM audit.events WHERE id = $1`, stored[3])
		return err
	})
	ok, bad, problem = e.verifyProblem(a.Token)
	require.False(t, ok, "the oldest event deleted without a cut verified")
	require.Equal(t, stored[4], bad)
	require.Contains(t, problem, "oldest events were removed")

	// And a chain that never saw retention.
	b := e.accounts.api.SignUp("bob")
	var ids []string
	for i := range 4 {
		ev := event(b.AccountID, time.Now().Add(time.Duration(i)*time.Millisecond))
		require.True(t, e.appendEvent(ev))
		ids = append(ids, ev.GetId())
	}
	e.asSuperuser(func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `DELETE FROM audit.events WHERE id = ANY($1)`, ids[:2])
		return err
	})
	ok, bad, _ = e.verifyProblem(b.Token)
	require.False(t, ok)
	require.Equal(t, ids[2], bad)
}
