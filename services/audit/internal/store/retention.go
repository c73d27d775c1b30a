package store

import (
	"context"
	"time"
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

// ApplyRetention deletes the account's events that occurred before olderThan, keeping the
// rest a contiguous, verifiable chain, and returns how many were deleted.
func (s *Store) ApplyRetention(ctx context.Context, accountID string, olderThan time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, applyRetentionSQL, accountID, olderThan).Scan(&n)
	return n, err
}
