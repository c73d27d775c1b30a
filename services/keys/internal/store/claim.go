package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
)

// Claiming is a key locked for a claim (BeginClaim): until Commit or Rollback no other
// transaction can change it, and a concurrent claim of it waits in BeginClaim.
type Claiming struct {
	tx pgx.Tx
	ns string
	// Key is the key as it is now.
	Key *Key
}

// lockByHashSQL finds a key by hash alone, as ByHash does: a claim proves possession of an
// anonymous key, which belongs to no account yet.
const lockByHashSQL = `SELECT ` + columns + ` FROM keys WHERE key_hash = $1 FOR UPDATE`

// BeginClaim begins the claim of the key with hash (keyed, as stored): it opens a
// transaction, locks the key's row and returns it as it is now, for the caller to check
// that it may be claimed and to link its data before Commit. The lock holds a connection
// until Commit or Rollback; always call Rollback (a no-op after Commit). Errors:
// ErrNotFound when no key has the hash.
func (s *Store) BeginClaim(ctx context.Context, hash []byte) (*Claiming, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	k, err := scan(tx.QueryRow(ctx, lockByHashSQL, hash))
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, postgres.Error(err, ErrNotFound)
	}
	return &Claiming{tx: tx, ns: s.ns, Key: k}, nil
}

// Claim is what a claim commits: the anonymous key joins an account's project and
// environment, in grace until GraceUntil, succeeded by NewKey, exactly as a rotation into
// the account would leave it.
type Claim struct {
	AccountID, ProjectID, Environment string
	// EnvironmentAddedAt is the environment's current stay, as for a key minted there
	// (Key.EnvironmentAddedAt).
	EnvironmentAddedAt time.Time
	// At is when the claim commits: the key's claimed_at.
	At         time.Time
	GraceUntil time.Time
	// NewKey is the key the claim mints, of the account.
	NewKey *Key
	// Events go to the outbox with the claim (key.created, key.claimed).
	Events []*eventsv1.Event
	// Audit is what the call's audit event records (auditlog.Record).
	Audit auditlog.Facts
}

// errClaimRaced is a claim whose key changed although it was locked: it cannot happen
// while BeginClaim's lock holds, and is refused rather than committed if it does.
var errClaimRaced = apierr.New(apierr.Conflict, "a concurrent change got in the way; retry")

const claimSQL = `UPDATE keys SET account_id = $2, project_id = nullif($3, ''), environment = nullif($4, ''),
	environment_added_at = $5, grace_until = $6, rotated_to_id = $7, claimed_at = $8
	WHERE id = $1 AND account_id IS NULL AND revoked_at IS NULL`

// Commit stores c and its events and audit event, and commits: the locked key, still of
// no account and not revoked, becomes c's, and c.NewKey is stored. Errors: a driver error
// (postgres.Error); nothing is stored then.
func (c *Claiming) Commit(ctx context.Context, cl Claim) error {
	err := func() error {
		if err := insert(ctx, c.tx, cl.NewKey); err != nil {
			return err
		}
		tag, err := c.tx.Exec(ctx, claimSQL, c.Key.ID, cl.AccountID, cl.ProjectID, cl.Environment,
			pgtype.Timestamptz{Time: cl.EnvironmentAddedAt, Valid: !cl.EnvironmentAddedAt.IsZero()},
			cl.GraceUntil, cl.NewKey.ID, cl.At)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return errClaimRaced
		}
		for _, ev := range cl.Events {
			if err := outbox.Add(ctx, c.tx, c.ns, ev); err != nil {
				return err
			}
		}
		if err := auditlog.Record(ctx, c.tx, cl.Audit); err != nil {
			return err
		}
		return c.tx.Commit(ctx)
	}()
	return postgres.Error(err, nil)
}

// Rollback ends the claim's transaction without storing anything, unless Commit did.
func (c *Claiming) Rollback(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.tx.Rollback(rctx)
}
