package store

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// Server is a stored server (POST /v1/servers). It never holds a key's plaintext.
type Server struct {
	ID        string
	AccountID string
	ProjectID string
	Name      string
	Hostname  string
	Tags      []string
	// KeyID is the server's current collector key; KeyDisplayPrefix is that key's display
	// prefix, read with it.
	KeyID            string
	KeyDisplayPrefix string
	// KeyLifetime is that key's revoked_at, expires_at and grace_until, read with it: its
	// status (KeyStatus) tells whether the server can still send with it.
	KeyLifetime verdict.Lifetime
	CreatedAt   time.Time
	CreatedBy   string
	DeletedAt   *time.Time
}

// KeyStatus is the status of the server's current key at now (Key.Status's rule): a
// server whose key is revoked or expired cannot send until RotateServerKey mints it a new one.
func (v *Server) KeyStatus(now time.Time) string {
	return string(v.KeyLifetime.Status(now))
}

// ErrServerNotFound is what a caller sees for a server that is not theirs, does not exist
// or was deleted.
var ErrServerNotFound = apierr.New(apierr.NotFound, "server not found (it may have been deleted)")

// serverColumns reads a server with its current key's display prefix (serverFrom).
const (
	serverColumns = `s.id, s.account_id, s.project_id, s.name, s.hostname, s.tags, s.key_id, k.display_prefix,
	k.revoked_at, k.expires_at, k.grace_until, s.created_at, s.created_by, s.deleted_at`
	serverFrom = ` FROM servers s JOIN keys k ON k.id = s.key_id`
)

func scanServer(row pgx.Row) (*Server, error) {
	var (
		v                            Server
		revokedAt, expiresAt, graceU *time.Time
	)
	err := row.Scan(&v.ID, &v.AccountID, &v.ProjectID, &v.Name, &v.Hostname, &v.Tags, &v.KeyID, &v.KeyDisplayPrefix,
		&revokedAt, &expiresAt, &graceU, &v.CreatedAt, &v.CreatedBy, &v.DeletedAt)
	if err != nil {
		return nil, err
	}
	v.KeyLifetime = verdict.Lifetime{RevokedAt: orZero(revokedAt), ExpiresAt: orZero(expiresAt), GraceUntil: orZero(graceU)}
	return &v, nil
}

const insertServerSQL = `INSERT INTO servers (id, account_id, project_id, name, hostname, tags, key_id, created_at, created_by)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

// CreateServer stores srv and its first key k (bound to srv: k.ServerID is srv.ID, and
// srv.KeyID is k.ID) with k's key.created event and the call's audit event in one
// transaction, taking one use of each of caps in it, as Create does.
func (s *Store) CreateServer(ctx context.Context, srv *Server, k *Key, ev *eventsv1.Event, caps ...quota.Cap) error {
	return postgres.Error(postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := takeCaps(ctx, tx, srv.AccountID, caps); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, insertServerSQL, srv.ID, srv.AccountID, srv.ProjectID, srv.Name, srv.Hostname,
			notNullList(srv.Tags), srv.KeyID, srv.CreatedAt, srv.CreatedBy); err != nil {
			return err
		}
		if err := insert(ctx, tx, k); err != nil {
			return err
		}
		if err := outbox.Add(ctx, tx, s.ns, ev); err != nil {
			return err
		}
		return auditlog.Record(ctx, tx, auditlog.Facts{ResourceID: srv.ID, Details: map[string]string{"key_id": k.ID}})
	}), nil)
}

const getServerSQL = `SELECT ` + serverColumns + serverFrom + ` WHERE s.account_id = $1 AND s.id = $2 AND s.deleted_at IS NULL`

// GetServer reads one of the account's servers that is not deleted.
func (s *Store) GetServer(ctx context.Context, accountID, id string) (*Server, error) {
	v, err := scanServer(s.pool.QueryRow(ctx, getServerSQL, accountID, id))
	return v, postgres.Error(err, ErrServerNotFound)
}

// ServerFilter narrows ListServers; empty fields do not.
type ServerFilter struct {
	ProjectID, Name, Hostname, Tag string
	// After is the last id of the previous page.
	After string
	Limit int
}

// ListServers returns the account's servers that are not deleted, newest first, and,
// when another page follows, the last id of this one (the next page's After).
func (s *Store) ListServers(ctx context.Context, accountID string, f ServerFilter) ([]*Server, string, error) {
	// Each condition is a fixed fragment; only values travel as parameters.
	where := []string{"s.account_id = $1", "s.deleted_at IS NULL"}
	args := []any{accountID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.ProjectID != "" {
		add("s.project_id = ?", f.ProjectID)
	}
	if f.Name != "" {
		add("s.name = ?", f.Name)
	}
	if f.Hostname != "" {
		add("s.hostname = ?", f.Hostname)
	}
	if f.Tag != "" {
		add("? = ANY(s.tags)", f.Tag)
	}
	if f.After != "" {
		add("s.id < ?", f.After)
	}
	args = append(args, f.Limit+1)
	q := `SELECT ` + serverColumns + serverFrom + ` WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY s.id DESC LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", postgres.Error(err, nil)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Server, error) { return scanServer(row) })
	if err != nil {
		return nil, "", postgres.Error(err, nil)
	}
	next := ""
	if len(out) > f.Limit {
		out = out[:f.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

const lockServerSQL = `SELECT ` + serverColumns + serverFrom + ` WHERE s.account_id = $1 AND s.id = $2 AND s.deleted_at IS NULL
	FOR UPDATE OF s`

// ChangeServer runs fn on one of the account's live servers and its current key, both
// locked; fn writes through tx and returns the events of its change and what the call's
// audit event records (its ResourceID defaults to the server's id). Events, audit event
// and change commit together; fn's error aborts. It returns the server as it is after.
func (s *Store) ChangeServer(ctx context.Context, accountID, id string,
	fn func(tx pgx.Tx, srv *Server, k *Key) ([]*eventsv1.Event, auditlog.Facts, error),
) (*Server, error) {
	var out *Server
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		srv, err := scanServer(tx.QueryRow(ctx, lockServerSQL, accountID, id))
		if err != nil {
			return postgres.Error(err, ErrServerNotFound)
		}
		k, err := scan(tx.QueryRow(ctx, lockSQL, accountID, srv.KeyID))
		if err != nil {
			return err
		}
		evs, facts, err := fn(tx, srv, k)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := outbox.Add(ctx, tx, s.ns, ev); err != nil {
				return err
			}
		}
		if out, err = scanServer(tx.QueryRow(ctx, getServerSQL, accountID, id)); err != nil {
			return err
		}
		if facts.ResourceID == "" {
			facts.ResourceID = id
		}
		return auditlog.Record(ctx, tx, facts)
	})
	return out, postgres.Error(err, nil)
}

const moveServerKeySQL = `UPDATE servers SET key_id = $4 WHERE account_id = $1 AND id = $2 AND key_id = $3`

// MoveServerKey makes successor the current key of the server whose current key is old
// (a rotation); a server whose current key is another (old was imported for it, say) is
// left as it is.
func MoveServerKey(ctx context.Context, tx pgx.Tx, accountID, serverID, old, successor string) error {
	_, err := tx.Exec(ctx, moveServerKeySQL, accountID, serverID, old, successor)
	return err
}

// ReplaceServerKey stores successor, a fresh key bound to the server, and makes it the
// server's current key in place of old (its current key, revoked or expired: there is no
// grace to give a dead key, so old is left as it is), taking one use of each of caps in
// tx, as Create does. The caller holds the server locked (ChangeServer) and commits
// successor's key.created event with tx.
func ReplaceServerKey(ctx context.Context, tx pgx.Tx, old, successor *Key, caps ...quota.Cap) error {
	if err := takeCaps(ctx, tx, successor.AccountID, caps); err != nil {
		return err
	}
	if err := insert(ctx, tx, successor); err != nil {
		return err
	}
	return MoveServerKey(ctx, tx, successor.AccountID, successor.ServerID, old.ID, successor.ID)
}

const (
	deleteServerSQL = `UPDATE servers SET deleted_at = $3 WHERE account_id = $1 AND id = $2`
	serverKeysSQL   = `SELECT ` + columns + ` FROM keys WHERE account_id = $1 AND server_id = $2 AND revoked_at IS NULL
		ORDER BY id FOR UPDATE`
)

// DeleteServer marks one of the account's live servers deleted at at and revokes, with
// reason, every key bound to it that is not revoked yet, each with the key.revoked event
// revoked makes of it; one use of each of caps is taken, and the call's audit event
// written, in the same transaction. It returns the server as it is after and the keys it
// revoked, as they were before.
func (s *Store) DeleteServer(ctx context.Context, accountID, id string, at time.Time, reason string,
	revoked func(k *Key) *eventsv1.Event, caps ...quota.Cap,
) (*Server, []*Key, error) {
	var (
		out  *Server
		keys []*Key
	)
	err := postgres.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := scanServer(tx.QueryRow(ctx, lockServerSQL, accountID, id)); err != nil {
			return postgres.Error(err, ErrServerNotFound)
		}
		if err := takeCaps(ctx, tx, accountID, caps); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, serverKeysSQL, accountID, id)
		if err != nil {
			return err
		}
		if keys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Key, error) { return scan(row) }); err != nil {
			return err
		}
		for _, k := range keys {
			if err := Revoke(ctx, tx, k, at, reason); err != nil {
				return err
			}
			if err := outbox.Add(ctx, tx, s.ns, revoked(k)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, deleteServerSQL, accountID, id, at); err != nil {
			return err
		}
		if out, err = scanServer(tx.QueryRow(ctx, `SELECT `+serverColumns+serverFrom+` WHERE s.account_id = $1 AND s.id = $2`, accountID, id)); err != nil {
			return err
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		return auditlog.Record(ctx, tx, auditlog.Facts{ResourceID: id, Details: map[string]string{"revoked_key_ids": strings.Join(ids, ",")}})
	})
	return out, keys, postgres.Error(err, nil)
}

const lockLiveServerSQL = `SELECT id FROM servers WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`

// LockServer locks one of the account's live servers in tx, so that it cannot be deleted
// until tx ends: a key minted for it (rotated, imported) is then either seen and revoked
// by DeleteServer, or refused here. ErrServerNotFound when it is not live.
func LockServer(ctx context.Context, tx pgx.Tx, accountID, id string) error {
	err := tx.QueryRow(ctx, lockLiveServerSQL, accountID, id).Scan(&id)
	return postgres.Error(err, ErrServerNotFound)
}

const serverOfSQL = `SELECT project_id FROM servers WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL`

// ServerProject returns the project of one of the account's live servers.
func (s *Store) ServerProject(ctx context.Context, accountID, id string) (string, error) {
	var project string
	err := s.pool.QueryRow(ctx, serverOfSQL, accountID, id).Scan(&project)
	return project, postgres.Error(err, ErrServerNotFound)
}
