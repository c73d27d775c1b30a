package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// RevokeReasonExposed is the revoke_reason of a key a leak report revoked.
const RevokeReasonExposed = "exposed"

// byHashesSQL finds keys by hash alone, in any account, as ByHash does: a leak report
// names keys by their plaintext, before anyone knows whose they are, and VerifyKey calls
// that arrive together are answered with one query (api's batched lookup).
const byHashesSQL = `SELECT ` + columns + ` FROM keys WHERE key_hash = ANY($1::bytea[])`

// ByHashes finds the keys among hashes (keyed, as stored), in any account, anonymous keys
// included; hashes that match none are left out. The order of the result is not hashes'.
func (s *Store) ByHashes(ctx context.Context, hashes [][]byte) ([]*Key, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, byHashesSQL, hashes)
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Key, error) { return scan(row) })
	return keys, postgres.Error(err, nil)
}

// Exposure is what Expose commits for one key a leak report found.
type Exposure struct {
	// KeyID is the key's id.
	KeyID string
	// At is the report's instant: the key's exposed_at, its revoked_at when Revoke, and
	// the instant its status is judged at.
	At time.Time
	// Revoke revokes the key too, with RevokeReasonExposed.
	Revoke bool
	// Events go to the outbox with the change (key.exposed, and key.revoked when Revoke).
	Events []*eventsv1.Event
	// Actor, Action and Audit are the audit event (auditlog.RecordBy), filed under
	// Audit.AccountID: the key's owner.
	Actor  *auditv1.Actor
	Action auditlog.Action
	Audit  auditlog.Facts
}

// exposeSQL sets exposed_at, and revokes when $3, only on a key that is still live (active
// or in grace, by verdict's rule at $2) and was never exposed: the condition is checked on
// the row as it is when the UPDATE gets its lock, so of two reports of the same key at
// once exactly one changes it.
var exposeSQL = `UPDATE keys SET exposed_at = $2,
	revoked_at = CASE WHEN $3 THEN $2 ELSE revoked_at END,
	revoke_reason = CASE WHEN $3 THEN '` + RevokeReasonExposed + `' ELSE revoke_reason END
	WHERE id = $1 AND exposed_at IS NULL
	AND (` + verdict.StatusSQL("$2") + `) IN ('` + string(verdict.StatusActive) + `', '` + string(verdict.StatusGrace) + `')`

// Expose records, in one transaction, that a leak report found the key e.KeyID: its
// exposed_at (and its revocation when e.Revoke), e.Events and the audit event, provided
// the key is live at e.At and was never exposed before. It reports whether it changed
// anything: false (and nothing written) for a key already exposed, revoked or expired, so
// a report repeated, or two at once, changes a key once and emits its events once.
// Errors: a driver error (postgres.Error).
func (s *Store) Expose(ctx context.Context, e Exposure) (bool, error) {
	changed := false
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, exposeSQL, e.KeyID, e.At, e.Revoke)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		for _, ev := range e.Events {
			if err := outbox.Add(ctx, tx, s.ns, ev); err != nil {
				return err
			}
		}
		if err := auditlog.RecordBy(ctx, tx, s.ns, e.Actor, e.Action, e.Audit); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if err != nil {
		return false, postgres.Error(err, nil)
	}
	return changed, nil
}
