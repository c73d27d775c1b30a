package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
)

// Plans and statuses, as stored.
const (
	PlanFree        = "free"
	PlanPro         = "pro"
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Account is an organisation.
type Account struct {
	ID          string
	Name        string
	Plan        string
	Status      string
	TrialEndsAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// User is a person who logs in to an account.
type User struct {
	ID           string
	AccountID    string
	Email        string
	PasswordHash string
	CreatedAt    time.Time
}

const accountColumns = `id, name, plan, status, trial_ends_at, created_at, updated_at`

func scanAccount(row pgx.Row) (Account, error) {
	var a Account
	err := row.Scan(&a.ID, &a.Name, &a.Plan, &a.Status, &a.TrialEndsAt, &a.CreatedAt, &a.UpdatedAt)
	return a, err
}

const (
	insertAccountSQL = `INSERT INTO accounts (id, name, plan, status, trial_ends_at, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)`
	insertUserSQL = `INSERT INTO users (id, account_id, email, password_hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`
)

// SignUp creates an account, its first user and a session in one transaction; a taken
// email is ErrEmailTaken.
func (s *Store) SignUp(ctx context.Context, a Account, u User, sess Session) error {
	err := s.inTx(ctx, auditlog.Facts{ResourceID: a.ID, AccountID: a.ID}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, insertAccountSQL, a.ID, a.Name, a.Plan, a.Status, a.TrialEndsAt, a.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertUserSQL, u.ID, u.AccountID, u.Email, u.PasswordHash, u.CreatedAt); err != nil {
			return err
		}
		return insertSession(ctx, tx, sess)
	})
	if isUnique(err, "users_email_key") {
		return ErrEmailTaken
	}
	return err
}

const selectAccountSQL = `SELECT ` + accountColumns + ` FROM accounts WHERE id = $1`

// Account reads an account by id.
func (s *Store) Account(ctx context.Context, id string) (Account, error) {
	a, err := scanAccount(s.pool.QueryRow(ctx, selectAccountSQL, id))
	return a, wrap(err)
}

const (
	userColumns        = `id, account_id, email, password_hash, created_at`
	selectUserByEmail  = `SELECT ` + userColumns + ` FROM users WHERE email = $1`
	selectUserByIDSQL  = `SELECT ` + userColumns + ` FROM users WHERE id = $1 AND account_id = $2`
	selectAccountForUp = `SELECT ` + accountColumns + ` FROM accounts WHERE id = $1 FOR UPDATE`
)

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.ID, &u.AccountID, &u.Email, &u.PasswordHash, &u.CreatedAt)
	return u, err
}

// UserByEmail reads a user by lower-cased email.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, selectUserByEmail, email))
	return u, wrap(err)
}

// User reads a user of an account.
func (s *Store) User(ctx context.Context, accountID, id string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, selectUserByIDSQL, id, accountID))
	return u, wrap(err)
}

const setPlanSQL = `UPDATE accounts SET plan = $2, updated_at = $3 WHERE id = $1 RETURNING ` + accountColumns

// SetPlan moves an account to plan. When the plan changes, event(previous, updated) is
// written to the outbox with the change; setting the current plan again changes nothing.
func (s *Store) SetPlan(ctx context.Context, id, plan string, now time.Time, event func(prev, next Account) *eventsv1.Event) (Account, error) {
	var out Account
	err := s.inTx(ctx, auditlog.Facts{ResourceID: id}, func(tx pgx.Tx) error {
		prev, err := scanAccount(tx.QueryRow(ctx, selectAccountForUp, id))
		if err != nil {
			return err
		}
		if prev.Plan == plan {
			out = prev
			return nil
		}
		if out, err = scanAccount(tx.QueryRow(ctx, setPlanSQL, id, plan, now)); err != nil {
			return err
		}
		return s.emit(ctx, tx, event(prev, out))
	})
	return out, err
}

const setStatusSQL = `UPDATE accounts SET status = $2, suspend_reason = $3, updated_at = $4
	WHERE id = $1 RETURNING ` + accountColumns

// SetStatus suspends an account (StatusSuspended, with the reason) or reinstates it
// (StatusActive); event(updated) goes to the outbox when the status changed. Setting the
// status it has changes nothing.
func (s *Store) SetStatus(ctx context.Context, id, status, reason string, now time.Time, event func(Account) *eventsv1.Event) (Account, error) {
	if status != StatusSuspended {
		reason = "" // the reason is the suspension's
	}
	var out Account
	err := s.inTx(ctx, auditlog.Facts{ResourceID: id}, func(tx pgx.Tx) error {
		prev, err := scanAccount(tx.QueryRow(ctx, selectAccountForUp, id))
		if err != nil {
			return err
		}
		if prev.Status == status {
			out = prev
			return nil
		}
		if out, err = scanAccount(tx.QueryRow(ctx, setStatusSQL, id, status, reason, now)); err != nil {
			return err
		}
		return s.emit(ctx, tx, event(out))
	})
	return out, err
}
