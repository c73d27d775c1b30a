// Package quota enforces per-account hourly caps (create and delete projects, rotations,
// account keys) in Postgres, so they hold across replicas. Each service keeps the table in
// its own schema: pass Migrations to postgres.Migrate.
package quota

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// Migrations creates the usage table.
//
//go:embed *.sql
var Migrations embed.FS

// Window is the length of a cap's window.
const Window = time.Hour

// A use is counted only while under the cap, in one statement, so concurrent callers on
// any replica can never together pass it.
const takeSQL = `INSERT INTO quota_usage AS q (account_id, action, window_start, used)
	VALUES ($1, $2, date_bin('1 hour', now(), 'epoch'), 1)
	ON CONFLICT (account_id, action, window_start) DO UPDATE SET used = q.used + 1
	WHERE q.used < $3
	RETURNING used`

const windowEndSQL = `SELECT date_bin('1 hour', now(), 'epoch') + interval '1 hour' - now()`

// Quota takes uses from hourly caps.
type Quota struct{ pool *pgxpool.Pool }

// New returns a quota on the service's pool.
func New(pool *pgxpool.Pool) *Quota { return &Quota{pool: pool} }

// Take counts one use of action by account under an hourly cap; at the cap it returns a
// 429 rate_limited with tier "hourly" and Retry-After until the window ends. A cap of 0 or
// less is no cap.
func (q *Quota) Take(ctx context.Context, accountID, action string, perHour int) error {
	if perHour <= 0 {
		return nil
	}
	var used int
	err := q.pool.QueryRow(ctx, takeSQL, accountID, action, perHour).Scan(&used)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var left time.Duration
	if err := q.pool.QueryRow(ctx, windowEndSQL).Scan(&left); err != nil {
		left = Window
	}
	return (&apierr.Error{
		Code:       apierr.RateLimited,
		Message:    fmt.Sprintf("this account may %s at most %d times an hour", action, perHour),
		RetryAfter: left,
	}).With("tier", "hourly")
}
