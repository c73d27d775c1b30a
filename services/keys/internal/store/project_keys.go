package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// oneActiveIndex is the partial unique index of migration 0006: at most one active key of
// a per_project type per project (docs/keys.md, "One key per project").
const oneActiveIndex = "keys_one_per_project"

// ProjectKeyTaken reports whether err is an insert refused because the new key's project
// already holds an active key of its per_project type (Key.PerProject): the answer to the
// second of two concurrent creations, whichever checks ran before.
func ProjectKeyTaken(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == postgres.UniqueViolation && pgErr.ConstraintName == oneActiveIndex
}

// activeProjectKeySQL has the index's own predicate, so it reads the index.
const activeProjectKeySQL = `SELECT ` + columns + ` FROM keys
	WHERE account_id = $1 AND project_id = $2 AND type = $3
	AND per_project AND revoked_at IS NULL AND grace_until IS NULL`

// ActiveProjectKey returns the project's active key of the per_project type typ (the one
// keys_one_per_project allows); ErrNotFound when it has none.
func (s *Store) ActiveProjectKey(ctx context.Context, accountID, projectID, typ string) (*Key, error) {
	k, err := scan(s.pool.QueryRow(ctx, activeProjectKeySQL, accountID, projectID, typ))
	return k, postgres.Error(err, ErrNotFound)
}

// inGraceSQL judges status by verdict's rule at the bound instant ($5), as List does.
var inGraceSQL = `SELECT ` + columns + ` FROM keys
	WHERE account_id = $1 AND project_id = $2 AND type = $3 AND per_project AND id <> $4
	AND (` + verdict.StatusSQL("$5::timestamptz") + `) = '` + StatusGrace + `'
	ORDER BY id DESC LIMIT 1`

// InGrace returns a key of the project's per_project type typ, other than exceptID, that
// is in its rotation grace at now; nil when there is none. It reads in tx, so a rotation
// checks under the lock of the key it rotates.
func InGrace(ctx context.Context, tx pgx.Tx, accountID, projectID, typ, exceptID string, now time.Time) (*Key, error) {
	k, err := scan(tx.QueryRow(ctx, inGraceSQL, accountID, projectID, typ, exceptID, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return k, err
}

// InsertWith stores k, a key minted inside another change (the replacement of a revoked
// key), with its event, in that change's transaction tx: the change's own event and audit
// event are the caller's (Change).
func (s *Store) InsertWith(ctx context.Context, tx pgx.Tx, k *Key, ev *eventsv1.Event) error {
	if err := insert(ctx, tx, k); err != nil {
		return err
	}
	return outbox.Add(ctx, tx, s.ns, ev)
}
