// Package quota enforces per-account hourly caps (create and delete projects, rotations,
// account keys) in Postgres, so they hold across replicas. Each service keeps the table in
// its own schema: pass Migrations to postgres.Migrate.
//
// A use is taken inside the transaction of the change it counts, never on a connection of
// its own: if the change rolls back (it fails after the take, or another cap refuses it),
// the use is not spent. Take accepts only a pgx.Tx so that no caller can spend a cap
// outside its change.
package quota

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// Migrations creates the usage table.
//
//go:embed *.sql
var Migrations embed.FS

// Window is the length of a cap's window.
const Window = time.Hour

// Cap is an hourly cap on one action of an account.
type Cap struct {
	// Action names the capped call in the refusal ("rotate keys": "this account may rotate
	// keys at most N times an hour") and keys its counter.
	Action string
	// PerHour is how many uses an account gets in each hour-long window; 0 or less is no cap.
	PerHour int
}

// A use is counted only while under the cap, in one statement, so concurrent callers on
// any replica can never together pass it. The row stays locked until the change's
// transaction ends, so concurrent changes of one account and action queue behind it.
const takeSQL = `INSERT INTO quota_usage AS q (account_id, action, window_start, used)
	VALUES ($1, $2, date_bin('1 hour', now(), 'epoch'), 1)
	ON CONFLICT (account_id, action, window_start) DO UPDATE SET used = q.used + 1
	WHERE q.used < $3
	RETURNING used`

const windowEndSQL = `SELECT date_bin('1 hour', now(), 'epoch') + interval '1 hour' - now()`

// Take counts one use of c by the account inside tx, the transaction of the change it
// caps; the use is spent only if tx commits. At the cap it returns a 429 rate_limited with
// tier "hourly" and Retry-After until the window ends; the caller then rolls tx back. Any
// other error is the database's.
func Take(ctx context.Context, tx pgx.Tx, accountID string, c Cap) error {
	if c.PerHour <= 0 {
		return nil
	}
	var used int
	err := tx.QueryRow(ctx, takeSQL, accountID, c.Action, c.PerHour).Scan(&used)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var left time.Duration
	if err := tx.QueryRow(ctx, windowEndSQL).Scan(&left); err != nil {
		left = Window
	}
	return (&apierr.Error{
		Code:       apierr.RateLimited,
		Message:    fmt.Sprintf("this account may %s at most %d times an hour", c.Action, c.PerHour),
		RetryAfter: left,
	}).With("tier", "hourly")
}
