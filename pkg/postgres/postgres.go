// Package postgres holds the Postgres plumbing every service shares: the pgx pool, the
// migrations runner (each service embeds its own migrations and owns one schema), and the
// mapping of driver errors to client-facing ones.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// SQLSTATE codes we act on (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	UniqueViolation      = "23505"
	ForeignKeyViolation  = "23503"
	CheckViolation       = "23514"
	SerializationFailure = "40001"
	DeadlockDetected     = "40P01"
	QueryCanceled        = "57014"
	InvalidTextRepr      = "22P02"
	CharNotInRepertoire  = "22021"
	UntranslatableChar   = "22P05"
	InsufficientPriv     = "42501"
	RaiseException       = "P0001"
	AdminShutdown        = "57P01"
	CrashShutdown        = "57P02"
	CannotConnectNow     = "57P03"
	TooManyConnections   = "53300"
)

// Now is the current time as Postgres keeps it: truncated to the microsecond. A service
// that stamps rows with its own clock uses it, so that what a call answers (created_at,
// grace_until) is what a later read of the same row returns.
func Now() time.Time { return time.Now().Truncate(time.Microsecond) }

// Option adjusts a pool before it connects.
type Option func(*pgxpool.Config)

// AsRole makes every connection run as role (SET ROLE), so the service holds only that
// role's privileges: e.g. a writer that may not UPDATE or DELETE.
func AsRole(role string) Option {
	return func(cfg *pgxpool.Config) {
		set := "SET ROLE " + pgx.Identifier{role}.Sanitize()
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			if _, err := c.Exec(ctx, set); err != nil {
				return fmt.Errorf("postgres: SET ROLE %s: %w", role, err)
			}
			return nil
		}
	}
}

// Connect opens a pool whose connections use schema (the service's own) and waits until
// the server answers. Its errors do not name the setting url came from: callers prefix it.
func Connect(ctx context.Context, url, schema string, maxConns int32, opts ...Option) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("postgres: not a valid connection string")
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	for _, o := range opts {
		o(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: cannot reach %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// Unreachable reports whether err means the database could not be reached or dropped the
// connection, rather than refusing the query: a failed connect (pgconn.ConnectError:
// refused, unknown host, a database or role that is gone), a network error mid-query, or
// a SQLSTATE of class 08 (connection exception), 57P01–57P03 (shutting down, cannot
// connect now) or 53300 (too many connections). Such a failure is the client's to retry:
// pkg/server answers it as unavailable (503), never as an internal error.
func Unreachable(err error) bool {
	var connect *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connect) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	switch code := Code(err); {
	case strings.HasPrefix(code, "08"):
		return true
	case code == AdminShutdown || code == CrashShutdown || code == CannotConnectNow || code == TooManyConnections:
		return true
	}
	return false
}

// Code returns the SQLSTATE of err, or "".
func Code(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// Error maps a driver error to a client-facing one; notFound is returned for no rows.
// Anything unexpected stays an internal error (its cause is logged by the server, never sent).
func Error(err error, notFound *apierr.Error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows) && notFound != nil:
		return notFound
	}
	switch Code(err) {
	case SerializationFailure, DeadlockDetected:
		return &apierr.Error{Code: apierr.Conflict, Message: "a concurrent change got in the way; retry"}
	case QueryCanceled:
		return &apierr.Error{Code: apierr.DeadlineExceeded, Message: "the request timed out"}
	case CharNotInRepertoire, UntranslatableChar, InvalidTextRepr:
		// Text Postgres cannot hold (a NUL byte, say) that validation let through.
		return &apierr.Error{Code: apierr.InvalidArgument, Message: "the request holds characters that cannot be stored"}
	}
	return err
}

// InTx runs fn in a transaction, committing if it returns nil.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, fn)
}
