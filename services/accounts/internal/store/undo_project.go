package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/postgres"
)

// UndoCreateProject deletes a project CreateProject has just stored, whose creation the
// call could not complete (its key could not be minted: see the api package's
// mintProjectKey), and writes event() (project.deleted) to the outbox with it. Unlike
// DeleteProject it takes no cap and records no audit event of its own: the call's failure
// is its audit event, and its creation spent the cap already. A project already gone is
// ErrNotFound.
func (s *Store) UndoCreateProject(ctx context.Context, accountID, id string, event func() *eventsv1.Event) error {
	return wrap(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, deleteProjectSQL, accountID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return s.emit(ctx, tx, event())
	}))
}
