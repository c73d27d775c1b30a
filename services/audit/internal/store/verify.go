package store

import (
	"context"
	"errors"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// headSQL reads an account's chain head: the last link ever appended.
const headSQL = `SELECT sequence, hash FROM chain_heads WHERE account_id = $1`

// chainSQL reads an account's remaining events in chain order (the events_chain index).
const chainSQL = `SELECT ` + eventColumns + ` FROM events WHERE account_id = $1 ORDER BY sequence`

// Head is the last link of an account's chain.
type Head struct {
	Sequence int64
	Hash     string
}

// allCheckpoints bounds the checkpoints Walk reads: more than any chain has.
const allCheckpoints = math.MaxInt32

// Walk calls start with the account's checkpoints, then fn with each of its stored events
// in chain order until fn returns false, and returns the chain's head (zero when the
// account has none). Checkpoints, events and head come from one snapshot, so appends and
// retention running meanwhile are not half seen. fn's event is reused between calls.
func (s *Store) Walk(ctx context.Context, accountID string, start func([]chain.Checkpoint), fn func(*Event) bool) (Head, error) {
	var h Head
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		cps, err := listCheckpoints(ctx, tx, accountID, CheckpointPosition{}, allCheckpoints)
		if err != nil {
			return err
		}
		start(cps)
		err = tx.QueryRow(ctx, headSQL, accountID).Scan(&h.Sequence, &h.Hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, chainSQL, accountID)
		if err != nil {
			return err
		}
		defer rows.Close()
		var e Event
		for rows.Next() {
			if err := scanEvent(rows, &e); err != nil {
				return err
			}
			if !fn(&e) {
				break
			}
		}
		return rows.Err()
	})
	return h, err
}
