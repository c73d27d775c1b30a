package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/latchkey/latchkey/pkg/auditlog"
)

// Session is a login, known by the SHA-256 of its token.
type Session struct {
	ID        string
	UserID    string
	AccountID string
	TokenHash []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	// StepUpUntil is zero when the password was never re-verified in this session.
	StepUpUntil time.Time
}

const insertSessionSQL = `INSERT INTO sessions (id, user_id, account_id, token_hash, created_at, expires_at)
	VALUES ($1, $2, $3, $4, $5, $6)`

func insertSession(ctx context.Context, tx pgx.Tx, s Session) error {
	_, err := tx.Exec(ctx, insertSessionSQL, s.ID, s.UserID, s.AccountID, s.TokenHash, s.CreatedAt, s.ExpiresAt)
	return err
}

// CreateSession stores a new session.
func (s *Store) CreateSession(ctx context.Context, sess Session) error {
	f := auditlog.Facts{ResourceID: sess.UserID, AccountID: sess.AccountID}
	return s.inTx(ctx, f, func(tx pgx.Tx) error { return insertSession(ctx, tx, sess) })
}

const selectLiveSessionSQL = `SELECT s.id, s.user_id, s.account_id, s.created_at, s.expires_at, s.step_up_until,
		` + "a.id, a.name, a.plan, a.status, a.trial_ends_at, a.created_at, a.updated_at" + `
	FROM sessions s JOIN accounts a ON a.id = s.account_id
	WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2`

// LiveSession finds the unrevoked, unexpired session with that token hash, and its
// account; anything else is ErrNotFound.
func (s *Store) LiveSession(ctx context.Context, tokenHash []byte, now time.Time) (Session, Account, error) {
	var (
		sess   Session
		a      Account
		stepUp *time.Time
	)
	err := s.pool.QueryRow(ctx, selectLiveSessionSQL, tokenHash, now).Scan(
		&sess.ID, &sess.UserID, &sess.AccountID, &sess.CreatedAt, &sess.ExpiresAt, &stepUp,
		&a.ID, &a.Name, &a.Plan, &a.Status, &a.TrialEndsAt, &a.CreatedAt, &a.UpdatedAt)
	if err != nil {
		return Session{}, Account{}, wrap(err)
	}
	if stepUp != nil {
		sess.StepUpUntil = *stepUp
	}
	sess.TokenHash = tokenHash
	return sess, a, nil
}

const revokeSessionSQL = `UPDATE sessions SET revoked_at = $3
	WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL`

// RevokeSession ends a session of an account; an unknown or already revoked one is ErrNotFound.
func (s *Store) RevokeSession(ctx context.Context, accountID, id string, now time.Time) error {
	return s.inTx(ctx, auditlog.Facts{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, revokeSessionSQL, id, accountID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
}

const stepUpSQL = `UPDATE sessions SET step_up_until = LEAST($3::timestamptz, expires_at)
	WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL AND expires_at > $4
	RETURNING step_up_until`

// OpenStepUp records a password re-verification: the session counts as stepped up until
// until (never past its own expiry). It returns the stored end.
func (s *Store) OpenStepUp(ctx context.Context, accountID, id string, until, now time.Time) (time.Time, error) {
	var got time.Time
	err := s.inTx(ctx, auditlog.Facts{}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, stepUpSQL, id, accountID, until, now).Scan(&got)
	})
	return got, err
}

// Ended sessions are kept a day (for support questions), then deleted.
const pruneSessionsSQL = `DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $1`

// PruneSessions deletes sessions that ended before cutoff and returns how many.
func (s *Store) PruneSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, pruneSessionsSQL, cutoff)
	return tag.RowsAffected(), err
}
