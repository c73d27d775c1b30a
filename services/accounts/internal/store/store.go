// Package store is the accounts service's SQL: every statement is a named constant next to
// the code that runs it, and every project statement is bounded by account_id.
package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
)

// Errors the api layer turns into client-facing ones.
var (
	// ErrNotFound means no row matched (including rows of another account).
	ErrNotFound = errors.New("store: not found")
	// ErrEmailTaken means a user with that (lower-cased) email exists.
	ErrEmailTaken = errors.New("store: email already registered")
)

// Store runs the accounts schema's queries. Events it is handed go to the outbox in the
// transaction of the change they describe.
type Store struct {
	pool *pgxpool.Pool
	ns   string
}

// New returns a Store on pool (search_path = accounts) that writes events under namespace ns.
func New(pool *pgxpool.Pool, ns string) *Store {
	return &Store{pool: pool, ns: ns}
}

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// wrap maps driver errors: no rows → ErrNotFound, retryable and timeout conditions →
// client-facing errors (postgres.Error), anything else unchanged (logged as internal).
func wrap(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return postgres.Error(err, nil)
}

func isUnique(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == postgres.UniqueViolation && pgErr.ConstraintName == constraint
}

// inTx runs fn in a transaction that also holds the audit event of the call in ctx
// (auditlog.Record, with what the change knows of itself in f), so that a change and its
// audit event commit together. Every change of the accounts schema goes through here.
func (s *Store) inTx(ctx context.Context, f auditlog.Facts, fn func(pgx.Tx) error) error {
	return wrap(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return auditlog.Record(ctx, tx, f)
	}))
}

func (s *Store) emit(ctx context.Context, tx pgx.Tx, ev *eventsv1.Event) error {
	if ev == nil {
		return nil
	}
	return outbox.Add(ctx, tx, s.ns, ev)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
