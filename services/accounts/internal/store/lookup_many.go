package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ProjectRef names a project of an account.
type ProjectRef struct{ AccountID, ProjectID string }

const (
	// Pairs, so that a project asked for with another account is not found.
	selectProjectsSQL = `SELECT ` + projectColumns + ` FROM projects
		WHERE (account_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`
	selectAccountsSQL = `SELECT ` + accountColumns + ` FROM accounts WHERE id = ANY($1::text[])`
)

// LookupMany reads the projects named and their accounts, and the accounts named, in one
// round trip to Postgres; what does not exist is left out. The two reads are two statements, each seeing what had
// committed when it began, as two calls of Project and Account would.
func (s *Store) LookupMany(ctx context.Context, projects []ProjectRef, accountIDs []string) ([]Project, []Account, error) {
	pa, pp := make([]string, len(projects)), make([]string, len(projects))
	for i, r := range projects {
		pa[i], pp[i] = r.AccountID, r.ProjectID
	}
	// The projects' accounts too; = ANY finds each row once, however often it is named.
	accs := append(append(make([]string, 0, len(pa)+len(accountIDs)), pa...), accountIDs...)
	b := &pgx.Batch{}
	var (
		ps []Project
		as []Account
	)
	if len(projects) > 0 {
		b.Queue(selectProjectsSQL, pa, pp).Query(func(rows pgx.Rows) error {
			var err error
			ps, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Project, error) { return scanProject(r) })
			return err
		})
	}
	if len(accs) > 0 {
		b.Queue(selectAccountsSQL, accs).Query(func(rows pgx.Rows) error {
			var err error
			as, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) { return scanAccount(r) })
			return err
		})
	}
	if b.Len() == 0 {
		return nil, nil, nil
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, wrap(err)
	}
	return ps, as, nil
}
