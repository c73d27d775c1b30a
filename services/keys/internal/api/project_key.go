package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// The rules of one key per project (DESIGN "Seed schemes"; docs/keys.md, "One key per
// project"), for a per_project type (keyformat.Type.PerProject): a project holds exactly
// one key of the type that works (active) and at most one more in its rotation grace.
//   - The active one is held to one by Postgres (keys_one_per_project, migration 0006), so
//     two concurrent creations cannot both commit: the second is 409 already_exists
//     (projectKeyTaken). Such keys carry no expiry and no environment (perProjectFields),
//     so "not revoked and not rotated" is exactly "active".
//   - A rotation puts the active key in grace beside its successor; it is refused while an
//     earlier key of the project is still in grace (mayRotateProjectKey), so there is never
//     more than one in grace. Only the active key can be rotated, and it is locked while
//     this is checked, so no two rotations of a project run at once.
//   - Revoking the active key of a replace_on_revoke type mints its replacement in the
//     same transaction (replaceRevoked); revoking the one in grace does not (the active
//     one remains).

// perProjectFields refuses what a key of a per_project type t cannot have: an environment
// (the project's one key serves every environment of it) or an expiry (it works until it
// is revoked or rotated).
func perProjectFields(t *keyformat.Type, env string, expiresAt *timestamppb.Timestamp) error {
	if !t.PerProject {
		return nil
	}
	if env != "" {
		return invalid("%s keys belong to a whole project (one per project): leave environment empty", t.Name)
	}
	if expiresAt != nil {
		return invalid("%s keys do not expire (one per project, working until revoked or rotated): leave expires_at unset", t.Name)
	}
	return nil
}

// projectKeyTaken is the answer to a key of a per_project type refused by
// keys_one_per_project (err, from the store): 409 already_exists naming the project's key
// when it can be read. Any other err is returned as it is.
func (s *Server) projectKeyTaken(ctx context.Context, k *store.Key, err error) error {
	if !store.ProjectKeyTaken(err) {
		return err
	}
	what := "revoke it (POST /v1/keys/{id}:revoke) or rotate it (POST /v1/keys/{id}:rotate)"
	if t, ok := s.types.Lookup(k.Type); ok && t.ReplaceOnRevoke {
		what = "revoke it (POST /v1/keys/{id}:revoke), which mints its replacement, or rotate it (POST /v1/keys/{id}:rotate)"
	}
	if cur, lerr := s.store.ActiveProjectKey(ctx, k.AccountID, k.ProjectID, k.Type); lerr == nil {
		return apierr.New(apierr.AlreadyExists, "project %s already has its %s key, %s: a project holds one; %s", k.ProjectID, k.Type, cur.ID, what)
	}
	return apierr.New(apierr.AlreadyExists, "project %s already has its %s key: a project holds one; %s", k.ProjectID, k.Type, what)
}

// mayRotateProjectKey refuses to rotate k, the active key of a per_project type t, while
// another key of its project is still in its rotation grace: a second rotation would leave
// two keys in grace beside the active one. The caller holds k's lock (tx).
func mayRotateProjectKey(ctx context.Context, tx pgx.Tx, t *keyformat.Type, k *store.Key, now time.Time) error {
	if !t.PerProject {
		return nil
	}
	g, err := store.InGrace(ctx, tx, k.AccountID, k.ProjectID, k.Type, k.ID, now)
	if err != nil || g == nil {
		return err
	}
	return apierr.New(apierr.Conflict, "key %s of project %s is still in its rotation grace (until %s): a project holds its one %s key and at most one more in grace; revoke %s first, or rotate once its grace is over",
		g.ID, k.ProjectID, g.GraceUntil.UTC().Format(time.RFC3339), t.Name, g.ID)
}

// replacingType is what RevokeKey knows, before it locks key id, about replacing it: the
// key's type when that is replace_on_revoke and the key's project can take a new key
// (liveBinding: the account is not suspended and the project exists, read fresh from
// accounts); nil otherwise. A revocation never waits on accounts: when accounts cannot be
// asked the key is revoked all the same, with no replacement (POST /v1/keys mints one
// later, the project then holding none).
func (s *Server) replacingType(ctx context.Context, accountID, id string) *keyformat.Type {
	if t, ok := s.types.PerProject(); !ok || !t.ReplaceOnRevoke {
		return nil // the profile replaces nothing: no read, no call
	}
	k, err := s.store.Get(ctx, accountID, id)
	if err != nil {
		return nil // the locked read answers not_found, or fails, itself
	}
	t, ok := s.types.Lookup(k.Type)
	if !ok || !t.ReplaceOnRevoke || k.RevokedAt != nil {
		return nil
	}
	if _, err := s.liveBinding(ctx, k.AccountID, k.ProjectID); err != nil {
		logging.From(ctx).Warn("revoking a replace_on_revoke key without a replacement: its project cannot take one",
			zap.String("key_id", k.ID), zap.String("project_id", k.ProjectID), zap.Error(err))
		return nil
	}
	return t
}

// replaceRevoked mints the replacement of old, an active key of the replace_on_revoke type
// t that tx has just revoked, and stores it with its key.created event in tx: bound as old
// was, with old's name, capabilities and metadata, created by the caller p. It returns the
// replacement and its secret.
func (s *Server) replaceRevoked(ctx context.Context, tx pgx.Tx, p *auth.Principal, t *keyformat.Type, old *store.Key, now time.Time) (*store.Key, string, error) {
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: old.AccountID, Type: old.Type, Name: old.Name, ProjectID: old.ProjectID,
		Environment: old.Environment, EnvironmentAddedAt: old.EnvironmentAddedAt, Capabilities: old.Capabilities,
		CreatedBy: p.Actor(), Metadata: old.Metadata, CreatedAt: now,
	})
	if err != nil {
		return nil, "", err
	}
	ev := events.New(k.AccountID, requestid.From(ctx))
	ev.Payload = &eventsv1.Event_KeyCreated{KeyCreated: &eventsv1.KeyCreated{
		KeyId: k.ID, KeyHash: k.Hash, Type: k.Type, ProjectId: k.ProjectID, Environment: k.Environment,
	}}
	if err := s.store.InsertWith(ctx, tx, k, ev); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}
