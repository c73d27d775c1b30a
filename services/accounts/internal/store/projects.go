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
	ID           string
	AccountID    string
	Name         string
	Environments []string
	// EnvironmentsAddedAt is when each listed environment was last added, by name; one
	// listed since before this was recorded has no entry. Stored as jsonb; entries of
	// names not in Environments mean nothing.
	EnvironmentsAddedAt map[string]time.Time
	AllowedOrigins      []string
	CreatedAt           time.Time
	UpdatedAt           time.Time
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

const projectColumns = `id, account_id, name, environments, environments_added_at, allowed_origins, created_at, updated_at`

func scanProject(row pgx.Row) (Project, error) {
	var p Project
	err := row.Scan(&p.ID, &p.AccountID, &p.Name, &p.Environments, &p.EnvironmentsAddedAt, &p.AllowedOrigins, &p.CreatedAt, &p.UpdatedAt)
	p.Environments = nonNil(p.Environments)
	p.AllowedOrigins = nonNil(p.AllowedOrigins)
	return p, err
}

// Every environment of a new project is added at its creation.
const insertProjectSQL = `INSERT INTO projects (id, account_id, name, environments, environments_added_at, allowed_origins, created_at, updated_at)
	VALUES ($1, $2, $3, $4, (SELECT coalesce(jsonb_object_agg(e, $6::timestamptz), '{}') FROM unnest($4::text[]) e), $5, $6, $6)
	RETURNING ` + projectColumns

// CreateProject stores p and writes event(stored) and the call's audit event to the
// outbox with it, taking one use of c (quota.Take) in the same transaction: a refused cap
// stores nothing and a failed create spends nothing. It returns the project as stored, its
// environments added at its creation.
func (s *Store) CreateProject(ctx context.Context, p Project, c quota.Cap, event func(Project) *eventsv1.Event) (Project, error) {
	var out Project
	err := s.inTx(ctx, auditlog.Facts{ResourceID: p.ID}, func(tx pgx.Tx) error {
		if err := quota.Take(ctx, tx, p.AccountID, c); err != nil {
			return err
		}
		var err error
		out, err = scanProject(tx.QueryRow(ctx, insertProjectSQL, p.ID, p.AccountID, p.Name,
			nonNil(p.Environments), nonNil(p.AllowedOrigins), p.CreatedAt))
		if err != nil {
			return err
		}
		return s.emit(ctx, tx, event(out))
	})
	return out, err
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

// A change stamps the project at now, or one microsecond after its last stamp if the clock
// says otherwise ($9 is repeated below as changeStampSQL): updated_at never goes back, so
// an environment added back is stamped later than any stay of it before, and the keys of
// those stays never match it (verdict.Environments.Holds). Among the new environments,
// one already listed keeps its entry (or its lack of one); one not listed is stamped. The
// row lock the UPDATE takes orders concurrent changes, and each sees the one before.
const updateProjectSQL = `UPDATE projects SET
		name            = CASE WHEN $3::bool THEN $4::text ELSE name END,
		environments    = CASE WHEN $5::bool THEN $6::text[] ELSE environments END,
		environments_added_at = CASE WHEN $5::bool THEN (
			SELECT coalesce(jsonb_object_agg(e, CASE WHEN e = ANY(environments)
				THEN environments_added_at -> e ELSE to_jsonb(` + changeStampSQL + `) END), '{}')
			FROM unnest($6::text[]) e
			WHERE NOT (e = ANY(environments) AND NOT environments_added_at ? e))
			ELSE environments_added_at END,
		allowed_origins = CASE WHEN $7::bool THEN $8::text[] ELSE allowed_origins END,
		updated_at      = ` + changeStampSQL + `
	WHERE account_id = $1 AND id = $2
	RETURNING ` + projectColumns

// changeStampSQL is the instant a change of a project is made, in updateProjectSQL.
const changeStampSQL = `greatest($9::timestamptz, updated_at + interval '1 microsecond')`

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
