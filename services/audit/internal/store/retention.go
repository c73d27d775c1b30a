package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// chainAccountsSQL lists every account that has a chain (the ” account included).
const chainAccountsSQL = `SELECT account_id FROM chain_heads ORDER BY account_id`

// applyRetentionSQL deletes an account's events that occurred before a cut-off, oldest
// first in chain order; see the function in 0001_init.sql.
const applyRetentionSQL = `SELECT apply_retention($1, $2)`

// ChainAccounts returns every account with a chain.
func (s *Store) ChainAccounts(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, chainAccountsSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// firstKeptSQL is where an account's chain starts after retention: its oldest remaining
// event's sequence and prev_hash or, when none remains, just after its head.
const firstKeptSQL = `SELECT sequence, prev_hash FROM events WHERE account_id = $1
	UNION ALL SELECT sequence + 1, hash FROM chain_heads WHERE account_id = $1
	ORDER BY 1 LIMIT 1`

// ApplyRetention deletes the account's events that occurred before olderThan, keeping the
// rest a contiguous, verifiable chain, and returns how many were deleted. In the same
// transaction it stores a signed cut checkpoint saying where the chain now starts, which
// is what lets verify tell retention from a deletion.
func (s *Store) ApplyRetention(ctx context.Context, accountID string, olderThan time.Time) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, applyRetentionSQL, accountID, olderThan).Scan(&n); err != nil || n == 0 {
			return err
		}
		var seq int64
		var prev string
		if err := tx.QueryRow(ctx, firstKeptSQL, accountID).Scan(&seq, &prev); err != nil {
			return err
		}
		return insertCheckpoints(ctx, tx, []chain.Checkpoint{s.sign(accountID, chain.KindCut, seq, prev)})
	})
	return n, err
}
