// Package store is the keys service's SQL. Every query that serves a caller is scoped by
// account_id; only verification looks a key up by hash alone.
package store

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// Statuses a key can be in, as strings; the rule that derives them from a key's timestamps
// is verdict's (Key.Status, statusSQL).
const (
	StatusActive  = string(verdict.StatusActive)
	StatusGrace   = string(verdict.StatusGrace)
	StatusRevoked = string(verdict.StatusRevoked)
	StatusExpired = string(verdict.StatusExpired)
)

// Key is a stored key. It never holds the plaintext.
type Key struct {
	ID string
	// AccountID is "" for an anonymous key, which belongs to no account (NULL in the table).
	AccountID     string
	Type          string
	Name          string
	Hash          []byte
	DisplayPrefix string
	ProjectID     string
	Environment   string
	// EnvironmentAddedAt is when the stay of Environment the key was minted in began (the
	// project's environments_added_at entry for it at minting); zero when the key has no
	// environment or was minted before this was recorded. See verdict.Environments.Holds.
	EnvironmentAddedAt time.Time
	Capabilities       []string
	CreatedAt          time.Time
	CreatedBy          string
	ExpiresAt          *time.Time
	RevokedAt          *time.Time
	RevokeReason       string
	GraceUntil         *time.Time
	RotatedToID        string
	LastUsedAt         *time.Time
	Metadata           map[string]string
	// ExposedAt is when a leak report found the key in public while it was live (Expose);
	// nil when none did.
	ExposedAt *time.Time
	// ServerID is the server a collector key belongs to (POST /v1/servers, or a key imported
	// for a server); "" for every other key (NULL in the table).
	ServerID string
	// PerProject marks a key of a per_project type (keyformat.Type.PerProject) when it is
	// inserted, so that keys_one_per_project holds its project to one active such key. It
	// is written, not read back: the key's type says it.
	PerProject bool
}

// Lifetime is the part of k its status follows from.
func (k *Key) Lifetime() verdict.Lifetime {
	return verdict.Lifetime{RevokedAt: orZero(k.RevokedAt), ExpiresAt: orZero(k.ExpiresAt), GraceUntil: orZero(k.GraceUntil)}
}

func orZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// Status is the key's status at now, by verdict's rule (verdict.Lifetime.Status).
func (k *Key) Status(now time.Time) string {
	l := k.Lifetime()
	return string(l.Status(now))
}

// ErrNotFound is what a caller sees for a key that is not theirs or does not exist.
var ErrNotFound = apierr.New(apierr.NotFound, "key not found")

// columns reads a key; an anonymous key's NULL account_id reads as "".
const columns = `id, coalesce(account_id, ''), type, name, key_hash, display_prefix, coalesce(project_id, ''),
	coalesce(environment, ''), capabilities, created_at, created_by, expires_at, revoked_at,
	revoke_reason, grace_until, coalesce(rotated_to_id, ''), last_used_at, metadata,
	environment_added_at, exposed_at, coalesce(server_id, '')`

func scan(row pgx.Row) (*Key, error) {
	var (
		k          Key
		envAddedAt pgtype.Timestamptz
	)
	err := row.Scan(&k.ID, &k.AccountID, &k.Type, &k.Name, &k.Hash, &k.DisplayPrefix, &k.ProjectID,
		&k.Environment, &k.Capabilities, &k.CreatedAt, &k.CreatedBy, &k.ExpiresAt, &k.RevokedAt,
		&k.RevokeReason, &k.GraceUntil, &k.RotatedToID, &k.LastUsedAt, &k.Metadata, &envAddedAt, &k.ExposedAt, &k.ServerID)
	if err != nil {
		return nil, err
	}
	if envAddedAt.Valid {
		k.EnvironmentAddedAt = envAddedAt.Time
	}
	return &k, nil
}

// Store runs the keys service's queries.
type Store struct {
	pool *pgxpool.Pool
	// listings is where List reads: a read replica when one is set (ListFromReplica), else
	// pool. Nothing else reads it: see ListFromReplica.
	listings *pgxpool.Pool
	ns       string
}

// New returns a store on the primary pool; ns is the NATS namespace events are written
// under.
func New(pool *pgxpool.Pool, ns string) *Store { return &Store{pool: pool, listings: pool, ns: ns} }

// ListFromReplica makes List read from replica (DATABASE_REPLICA_URL), a read replica of
// the primary that may lag behind it. Only List: a listing a moment old misleads no one,
// whereas verification (ByHash, ByHashes), every write and every read a write or a
// decision rests on stay on the primary. A gateway that dropped a revoked key looks it up
// again through VerifyKey, which reads the primary, so a replica that has not yet replayed
// the revocation can never put the key back in a gateway's cache (docs/scale.md, "Read
// replicas").
func (s *Store) ListFromReplica(replica *pgxpool.Pool) { s.listings = replica }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

const insertSQL = `INSERT INTO keys (id, account_id, type, name, key_hash, display_prefix, project_id,
	environment, capabilities, created_by, expires_at, metadata, created_at, environment_added_at, server_id, per_project)
	VALUES ($1, nullif($2, ''), $3, $4, $5, $6, nullif($7, ''), nullif($8, ''), $9, $10, $11, $12, $13, $14, nullif($15, ''), $16)`

func insert(ctx context.Context, tx pgx.Tx, k *Key) error {
	_, err := tx.Exec(ctx, insertSQL, k.ID, k.AccountID, k.Type, k.Name, k.Hash, k.DisplayPrefix,
		k.ProjectID, k.Environment, notNullList(k.Capabilities), k.CreatedBy, k.ExpiresAt, notNull(k.Metadata), k.CreatedAt,
		pgtype.Timestamptz{Time: k.EnvironmentAddedAt, Valid: !k.EnvironmentAddedAt.IsZero()}, k.ServerID, k.PerProject)
	return err
}

// notNull returns a nil map as an empty one. protobuf gives nil for an empty or cleared
// map, and pgx would send it as NULL, which the NOT NULL column refuses: every write of
// a map or list column goes through notNull or notNullList.
func notNull(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// notNullList is notNull for a list column.
func notNullList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// Create stores a new key, its key.created event and the call's audit event in one
// transaction, and takes one use of each of caps (quota.Take) in it: a refused cap stores
// nothing, and a failed store spends no cap. A key bound to a server (k.ServerID) is
// stored only while the server is live (LockServer).
func (s *Store) Create(ctx context.Context, k *Key, ev *eventsv1.Event, caps ...quota.Cap) error {
	return postgres.Error(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if k.ServerID != "" {
			if err := LockServer(ctx, tx, k.AccountID, k.ServerID); err != nil {
				return err
			}
		}
		if err := takeCaps(ctx, tx, k.AccountID, caps); err != nil {
			return err
		}
		if err := insert(ctx, tx, k); err != nil {
			return err
		}
		if err := outbox.Add(ctx, tx, s.ns, ev); err != nil {
			return err
		}
		return auditlog.Record(ctx, tx, auditlog.Facts{ResourceID: k.ID})
	}), nil)
}

const getSQL = `SELECT ` + columns + ` FROM keys WHERE account_id = $1 AND id = $2`

// Get reads one of the account's keys.
func (s *Store) Get(ctx context.Context, accountID, id string) (*Key, error) {
	k, err := scan(s.pool.QueryRow(ctx, getSQL, accountID, id))
	return k, postgres.Error(err, ErrNotFound)
}

const byHashSQL = `SELECT ` + columns + ` FROM keys WHERE key_hash = $1`

// ByHash finds a key by its keyed hash, in any account: the one unscoped lookup, used to
// verify a presented key before anyone knows whose it is.
func (s *Store) ByHash(ctx context.Context, hash []byte) (*Key, error) {
	k, err := scan(s.pool.QueryRow(ctx, byHashSQL, hash))
	return k, postgres.Error(err, ErrNotFound)
}

// Filter narrows List.
type Filter struct {
	ProjectID, Environment, Type, Status string
	// At is the instant Status is judged at: the caller's clock, so the listing agrees with
	// the statuses it shows. Zero means time.Now().
	At time.Time
	// After is the last id of the previous page.
	After string
	Limit int
}

// List returns the account's keys, newest first, and, when another page follows, the
// last id of this one (the next page's After).
func (s *Store) List(ctx context.Context, accountID string, f Filter) ([]*Key, string, error) {
	// Each condition is a fixed fragment; only values travel as parameters.
	where := []string{"account_id = $1"}
	args := []any{accountID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ProjectID != "" {
		add("project_id = ?", f.ProjectID)
	}
	if f.Environment != "" {
		add("environment = ?", f.Environment)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if f.Status != "" {
		at := f.At
		if at.IsZero() {
			at = time.Now()
		}
		args = append(args, at)
		// The status rule's SQL form (verdict.StatusSQL), judged at the bound instant.
		add("("+verdict.StatusSQL("$"+strconv.Itoa(len(args)))+") = ?", f.Status)
	}
	if f.After != "" {
		add("id < ?", f.After)
	}
	args = append(args, f.Limit+1)
	q := `SELECT ` + columns + ` FROM keys WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.listings.Query(ctx, q, args...)
	if err != nil {
		return nil, "", postgres.Error(err, nil)
	}
	defer rows.Close()
	var keys []*Key
	for rows.Next() {
		k, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", postgres.Error(err, nil)
	}
	next := ""
	if len(keys) > f.Limit {
		keys = keys[:f.Limit]
		next = keys[len(keys)-1].ID
	}
	return keys, next, nil
}

// liveSQL judges status at the database's clock: a key that turns stale between this query
// and the caller's decision errs toward being named, never toward being missed.
var liveSQL = `SELECT ` + columns + ` FROM keys
	WHERE account_id = $1 AND project_id = $2
	AND (cardinality($3::text[]) = 0 OR environment = ANY($3::text[]))
	AND (` + verdict.StatusSQL("now()") + `) IN ('active', 'grace')
	AND ` + verdict.HoldsSQL("$5::jsonb") + `
	ORDER BY id DESC LIMIT $4`

// Live returns up to limit of the account's keys bound to the project (and to one of envs,
// unless envs is empty) that still work: active or in rotation grace, and minted in the
// current stay of their environment as the project's environments are (current, by
// verdict.Environments.Holds). more says whether there are others.
func (s *Store) Live(ctx context.Context, accountID, projectID string, envs []string, current verdict.Environments, limit int) (keys []*Key, more bool, err error) {
	if envs == nil {
		envs = []string{}
	}
	rows, err := s.pool.Query(ctx, liveSQL, accountID, projectID, envs, limit+1, current.JSON())
	if err != nil {
		return nil, false, postgres.Error(err, nil)
	}
	keys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Key, error) { return scan(row) })
	if err != nil {
		return nil, false, postgres.Error(err, nil)
	}
	if len(keys) > limit {
		return keys[:limit], true, nil
	}
	return keys, false, nil
}

const lockSQL = `SELECT ` + columns + ` FROM keys WHERE account_id = $1 AND id = $2 FOR UPDATE`

// Change runs fn on the locked key; if fn returns an event, the key's new state (written
// by fn through the Tx) and the event commit together, with the call's audit event. fn's
// error aborts.
func (s *Store) Change(ctx context.Context, accountID, id string, fn func(tx pgx.Tx, k *Key) (*eventsv1.Event, error)) (*Key, error) {
	return s.ChangeWith(ctx, accountID, id, func(tx pgx.Tx, k *Key) (*eventsv1.Event, map[string]string, error) {
		ev, err := fn(tx, k)
		return ev, nil, err
	})
}

// ChangeWith is Change for a change that adds details of its own to the call's audit
// event (a revocation names the key minted in its place).
func (s *Store) ChangeWith(ctx context.Context, accountID, id string, fn func(tx pgx.Tx, k *Key) (*eventsv1.Event, map[string]string, error)) (*Key, error) {
	var out *Key
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		k, err := scan(tx.QueryRow(ctx, lockSQL, accountID, id))
		if err != nil {
			return err
		}
		ev, details, err := fn(tx, k)
		if err != nil {
			return err
		}
		if ev != nil {
			if err := outbox.Add(ctx, tx, s.ns, ev); err != nil {
				return err
			}
		}
		if out, err = scan(tx.QueryRow(ctx, getSQL, accountID, id)); err != nil {
			return err
		}
		f := auditFacts(id, ev)
		if len(details) > 0 {
			if f.Details == nil {
				f.Details = make(map[string]string, len(details))
			}
			maps.Copy(f.Details, details)
		}
		return auditlog.Record(ctx, tx, f)
	})
	return out, postgres.Error(err, ErrNotFound)
}

// auditFacts is what the audit event of a change of key id knows before commit.
func auditFacts(id string, ev *eventsv1.Event) auditlog.Facts {
	f := auditlog.Facts{ResourceID: id}
	if r := ev.GetKeyRotated(); r != nil {
		f.Details = map[string]string{"new_key_id": r.GetNewKeyId()}
	}
	return f
}

const updateSQL = `UPDATE keys SET name = $3, capabilities = $4, expires_at = $5, metadata = $6
	WHERE account_id = $1 AND id = $2`

// Update writes k's mutable fields.
func Update(ctx context.Context, tx pgx.Tx, k *Key) error {
	_, err := tx.Exec(ctx, updateSQL, k.AccountID, k.ID, k.Name, notNullList(k.Capabilities), k.ExpiresAt, notNull(k.Metadata))
	return err
}

const revokeSQL = `UPDATE keys SET revoked_at = $3, revoke_reason = $4 WHERE account_id = $1 AND id = $2`

// Revoke marks k revoked.
func Revoke(ctx context.Context, tx pgx.Tx, k *Key, at time.Time, reason string) error {
	_, err := tx.Exec(ctx, revokeSQL, k.AccountID, k.ID, at, reason)
	return err
}

const (
	graceSQL     = `UPDATE keys SET grace_until = $3 WHERE account_id = $1 AND id = $2`
	rotatedToSQL = `UPDATE keys SET rotated_to_id = $3 WHERE account_id = $1 AND id = $2`
)

// Rotate stores successor and puts old in grace until graceUntil, taking one use of each
// of caps in tx, as Create does. old leaves "active" before successor is inserted, so a
// per_project type's one active key (keys_one_per_project) is never two, even for a
// moment; it names its successor once that exists (rotated_to_id references it).
func Rotate(ctx context.Context, tx pgx.Tx, old, successor *Key, graceUntil time.Time, caps ...quota.Cap) error {
	if err := takeCaps(ctx, tx, old.AccountID, caps); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, graceSQL, old.AccountID, old.ID, graceUntil); err != nil {
		return err
	}
	if err := insert(ctx, tx, successor); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, rotatedToSQL, old.AccountID, old.ID, successor.ID)
	return err
}

func takeCaps(ctx context.Context, tx pgx.Tx, accountID string, caps []quota.Cap) error {
	for _, c := range caps {
		if err := quota.Take(ctx, tx, accountID, c); err != nil {
			return err
		}
	}
	return nil
}

const touchSQL = `UPDATE keys SET last_used_at = u.at
	FROM unnest($1::text[], $2::timestamptz[]) AS u(id, at)
	WHERE keys.id = u.id AND (keys.last_used_at IS NULL OR keys.last_used_at < u.at)`

// TouchLastUsed records when keys were last used, many in one statement.
func (s *Store) TouchLastUsed(ctx context.Context, ids []string, at []time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.pool.Exec(ctx, touchSQL, ids, at)
	return err
}

// IsNotFound reports whether err is the store's not-found error.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
