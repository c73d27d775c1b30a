// Package store is the audit service's SQL. The service's connections run as the
// latchkey_audit_writer role, which may read and append events but never change or delete
// them; retention deletes only through the audit.apply_retention function.
package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
)

// WriterRole is the role every pooled connection takes (SET ROLE) before it is used.
const WriterRole = "latchkey_audit_writer"

// SQLSTATE codes of the audit schema.
const (
	// AppendOnlyViolation is raised by the trigger that refuses UPDATE, DELETE and
	// TRUNCATE of events outside retention.
	AppendOnlyViolation = "LKA01"
)

// Event is a stored event: its content and its place in its account's chain.
type Event struct {
	chain.Content
	Sequence int64
	PrevHash string
	Hash     string
	StoredAt time.Time
}

// Store runs the audit service's queries.
type Store struct {
	pool *pgxpool.Pool
	cps  Checkpoints
}

// New returns a store on a pool made by Connect that signs its chains' checkpoints as cps
// says (cps.Signer is required).
func New(pool *pgxpool.Pool, cps Checkpoints) *Store { return &Store{pool: pool, cps: cps} }

// Connect opens a pool on schema whose connections run as WriterRole, and waits until
// the server answers. Migrations need the schema's owner: run them on another pool.
func Connect(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	return postgres.Connect(ctx, url, schema, maxConns, postgres.AsRole(WriterRole))
}

// Ping checks that Postgres answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// eventColumns are scanned by scanEvent, in this order.
const eventColumns = `id, account_id, sequence, occurred_at, actor_type, actor_id, key_id, action,
	resource_type, resource_id, result, request_id, client_ip, user_agent, details, prev_hash, hash, stored_at`

func scanEvent(row pgx.Row, e *Event) error {
	e.Details = nil
	return row.Scan(&e.ID, &e.AccountID, &e.Sequence, &e.Time, &e.ActorType, &e.ActorID, &e.KeyID, &e.Action,
		&e.ResourceType, &e.ResourceID, &e.Result, &e.RequestID, &e.ClientIP, &e.UserAgent, &e.Details,
		&e.PrevHash, &e.Hash, &e.StoredAt)
}
