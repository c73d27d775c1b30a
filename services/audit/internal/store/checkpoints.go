package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// insertCheckpointsSQL stores signed checkpoints; one already stored (the same head signed
// by an appender and by the periodic signer) is kept.
const insertCheckpointsSQL = `INSERT INTO checkpoints (account_id, kind, sequence, hash, signed_at, public_key, signature)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], $6::text[], $7::text[])
	ON CONFLICT DO NOTHING`

// markCheckpointedSQL records the sequence of each chain's newest head checkpoint.
const markCheckpointedSQL = `UPDATE chain_heads AS h SET checkpoint_sequence = u.sequence
	FROM unnest($1::text[], $2::bigint[]) AS u(account_id, sequence)
	WHERE h.account_id = u.account_id AND h.checkpoint_sequence < u.sequence`

// dueHeadsSQL locks the chain heads that moved since their last checkpoint, in account
// order as appenders lock them.
const dueHeadsSQL = `SELECT account_id, sequence, hash FROM chain_heads
	WHERE sequence > checkpoint_sequence ORDER BY account_id FOR UPDATE`

// checkpointsSQL reads an account's checkpoints in chain order, (sequence, kind), after a
// position in that order.
const checkpointsSQL = `SELECT account_id, kind, sequence, hash, signed_at, public_key, signature
	FROM checkpoints WHERE account_id = $1 AND (sequence, kind) > ($2, $3)
	ORDER BY sequence, kind LIMIT $4`

// Checkpoints are how the store signs its chains.
type Checkpoints struct {
	// Signer signs every checkpoint; required.
	Signer *chain.Signer
	// Every is how many events an account's chain may grow by before an append signs its
	// head; 0 leaves heads to CheckpointHeads alone.
	Every int64
}

// sign returns a checkpoint of kind at (sequence, hash) of the account's chain, signed now.
func (s *Store) sign(accountID, kind string, sequence int64, hash string) chain.Checkpoint {
	c := chain.Checkpoint{
		AccountID: accountID, Kind: kind, Sequence: sequence, Hash: hash,
		SignedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
	s.cps.Signer.Sign(&c)
	return c
}

// insertCheckpoints stores cps in tx and moves the head checkpoint marks.
func insertCheckpoints(ctx context.Context, tx pgx.Tx, cps []chain.Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	n := len(cps)
	account, kind, hash, pub, sig := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	seq, at := make([]int64, n), make([]time.Time, n)
	var markAccount []string
	var markSeq []int64
	for i, c := range cps {
		account[i], kind[i], seq[i], hash[i], at[i], pub[i], sig[i] = c.AccountID, c.Kind, c.Sequence, c.Hash, c.SignedAt, c.PublicKey, c.Signature
		if c.Kind == chain.KindHead {
			markAccount, markSeq = append(markAccount, c.AccountID), append(markSeq, c.Sequence)
		}
	}
	if _, err := tx.Exec(ctx, insertCheckpointsSQL, account, kind, seq, hash, at, pub, sig); err != nil {
		return err
	}
	if len(markAccount) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, markCheckpointedSQL, markAccount, markSeq)
	return err
}

// CheckpointHeads signs the head of every chain that moved since its last checkpoint and
// returns how many it signed. The periodic signer calls it, so that no head stays
// unsigned for longer than its interval however few events arrive.
func (s *Store) CheckpointHeads(ctx context.Context) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, dueHeadsSQL)
		if err != nil {
			return err
		}
		var cps []chain.Checkpoint
		var account, hash string
		var seq int64
		if _, err := pgx.ForEachRow(rows, []any{&account, &seq, &hash}, func() error {
			cps = append(cps, s.sign(account, chain.KindHead, seq, hash))
			return nil
		}); err != nil {
			return err
		}
		n = len(cps)
		return insertCheckpoints(ctx, tx, cps)
	})
	return n, err
}

// CheckpointPosition is a place in an account's checkpoints, which sort by (sequence, kind).
type CheckpointPosition struct {
	Sequence int64
	Kind     string
}

// ListCheckpoints returns up to limit of the account's checkpoints after position after,
// in chain order.
func (s *Store) ListCheckpoints(ctx context.Context, accountID string, after CheckpointPosition, limit int) ([]chain.Checkpoint, error) {
	return listCheckpoints(ctx, s.pool, accountID, after, limit)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func listCheckpoints(ctx context.Context, q querier, accountID string, after CheckpointPosition, limit int) ([]chain.Checkpoint, error) {
	rows, err := q.Query(ctx, checkpointsSQL, accountID, after.Sequence, after.Kind, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (chain.Checkpoint, error) {
		var c chain.Checkpoint
		err := row.Scan(&c.AccountID, &c.Kind, &c.Sequence, &c.Hash, &c.SignedAt, &c.PublicKey, &c.Signature)
		return c, err
	})
}
