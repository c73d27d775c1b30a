package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/quota"
)

// Project groups keys and bounds their environments and browser origins.
type Project struct {
	ID             string
	AccountID      string
	Name           string
	Environments   []string
	AllowedOrigins []string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// ProjectUpdate names the fields to change; a nil slice or "" with its flag unset is kept.
type ProjectUpdate struct {
	SetName           bool
	Name              string
	SetEnvironments   bool
	Environments      []string
	SetAllowedOrigins bool
	AllowedOrigins    []string
}

const projectColumns = `id, account_id, name, environments, allowed_origins, created_at, updated_at`

func scanProject(row pgx.Row) (Project, error) {
	var p Project
	err := row.Scan(&p.ID, &p.AccountID, &p.Name, &p.Environments, &p.AllowedOrigins, &p.CreatedAt, &p.UpdatedAt)
	p.Environments = nonNil(p.Environments)
	p.AllowedOrigins = nonNil(p.AllowedOrigins)
	return p, err
}

const insertProjectSQL = `INSERT INTO projects (id, account_id, name, environments, allowed_origins, created_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, $6, $6)`

// CreateProject stores p and writes event(p) and the call's audit event to the outbox with
// it, taking one use of c (quota.Take) in the same transaction: a refused cap stores
// nothing and a failed create spends nothing.
func (s *Store) CreateProject(ctx context.Context, p Project, c quota.Cap, event func(Project) *eventsv1.Event) error {
	return s.inTx(ctx, auditlog.Facts{ResourceID: p.ID}, func(tx pgx.Tx) error {
		if err := quota.Take(ctx, tx, p.AccountID, c); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertProjectSQL, p.ID, p.AccountID, p.Name,
			nonNil(p.Environments), nonNil(p.AllowedOrigins), p.CreatedAt); err != nil {
			return err
		}
		return s.emit(ctx, tx, event(p))
	})
}

const selectProjectSQL = `SELECT ` + projectColumns + ` FROM projects WHERE account_id = $1 AND id = $2`

// Project reads a project of an account; another account's project is ErrNotFound.
func (s *Store) Project(ctx context.Context, accountID, id string) (Project, error) {
	p, err := scanProject(s.pool.QueryRow(ctx, selectProjectSQL, accountID, id))
	return p, wrap(err)
}

const listProjectsSQL = `SELECT ` + projectColumns + ` FROM projects
	WHERE account_id = $1 AND ($2 = '' OR id < $2)
	ORDER BY id DESC LIMIT $3`

// ListProjects returns up to limit projects of an account, newest first, starting after
// the project id before ("" for the first page).
func (s *Store) ListProjects(ctx context.Context, accountID, before string, limit int) ([]Project, error) {
	rows, err := s.pool.Query(ctx, listProjectsSQL, accountID, before, limit)
	if err != nil {
		return nil, wrap(err)
	}
	defer rows.Close()
	var out []Project
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, wrap(err)
		}
		out = append(out, p)
	}
	return out, wrap(rows.Err())
}

const updateProjectSQL = `UPDATE projects SET
		name            = CASE WHEN $3::bool THEN $4::text ELSE name END,
		environments    = CASE WHEN $5::bool THEN $6::text[] ELSE environments END,
		allowed_origins = CASE WHEN $7::bool THEN $8::text[] ELSE allowed_origins END,
		updated_at      = $9
	WHERE account_id = $1 AND id = $2
	RETURNING ` + projectColumns

// UpdateProject applies u to a project of an account and writes event(updated) to the
// outbox with it.
func (s *Store) UpdateProject(ctx context.Context, accountID, id string, u ProjectUpdate, now time.Time, event func(Project) *eventsv1.Event) (Project, error) {
	var out Project
	err := s.inTx(ctx, auditlog.Facts{ResourceID: id}, func(tx pgx.Tx) error {
		var err error
		out, err = scanProject(tx.QueryRow(ctx, updateProjectSQL, accountID, id,
			u.SetName, u.Name, u.SetEnvironments, nonNil(u.Environments),
			u.SetAllowedOrigins, nonNil(u.AllowedOrigins), now))
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, event(out))
	})
	return out, err
}

const deleteProjectSQL = `DELETE FROM projects WHERE account_id = $1 AND id = $2`

// DeleteProject deletes a project of an account and writes event() to the outbox with it,
// taking one use of c in the same transaction, as CreateProject does: deleting a project
// that does not exist spends nothing.
func (s *Store) DeleteProject(ctx context.Context, accountID, id string, c quota.Cap, event func() *eventsv1.Event) error {
	return s.inTx(ctx, auditlog.Facts{ResourceID: id}, func(tx pgx.Tx) error {
		if err := quota.Take(ctx, tx, accountID, c); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, deleteProjectSQL, accountID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return s.emit(ctx, tx, event())
	})
}
