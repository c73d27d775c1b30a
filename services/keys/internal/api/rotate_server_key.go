package api

import (
	"context"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// RotateServerKey rotates one of the caller's servers' current key as RotateKey does
// (rotateLocked), with the type's rotation grace, and makes the successor the server's
// key; it answers like CreateServer, with the new key's plaintext in server.api_key, and
// the old key, in grace. When the current key is dead (revoked, by a leak report or the
// key API, or expired) it mints the server a fresh key instead (replaceDeadKey): the
// server keeps its id (and so its Latchkey-Server-Id), and previous is the dead key as it
// is. Either way it takes the hourly server-rotations cap (not the rotations cap of
// RotateKey). Errors: not_found for a server that is not the caller's or was deleted;
// conflict when the current key is in grace (a rotation left it current); rate_limited
// (tier hourly) at the cap.
func (v serversServer) RotateServerKey(ctx context.Context, req *keysv1.RotateServerKeyRequest) (*keysv1.RotateServerKeyResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, capServers)
	if err != nil {
		return nil, err
	}
	t, err := s.serversType()
	if err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Server, req.GetId()); err != nil {
		return nil, err
	}
	// As RotateKey: the binding (the server's project) is checked before any lock.
	cur, err := s.store.GetServer(ctx, p.AccountID, req.GetId())
	if err != nil {
		return nil, err
	}
	curKey, err := s.store.Get(ctx, p.AccountID, cur.KeyID)
	if err != nil {
		return nil, err
	}
	if err := s.mayMintFor(ctx, curKey); err != nil {
		return nil, err
	}
	now := s.now()
	var (
		secret   string
		previous *store.Key
	)
	srv, err := s.store.ChangeServer(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, srv *store.Server, k *store.Key) ([]*eventsv1.Event, auditlog.Facts, error) {
		if deadKey(k, now) {
			successor, sec, err := s.replaceDeadKey(ctx, tx, p, t, srv, k, now)
			if err != nil {
				return nil, auditlog.Facts{}, err
			}
			secret, previous = sec, k
			facts := auditlog.Facts{Details: map[string]string{
				"new_key_id": successor.ID, "previous_key_id": k.ID, "previous_key_status": k.Status(now),
			}}
			return []*eventsv1.Event{keyCreated(ctx, successor)}, facts, nil
		}
		r, err := s.rotateLocked(ctx, tx, p, k, nil, []quota.Cap{s.serverCaps.Rotations}, now)
		if err != nil {
			return nil, auditlog.Facts{}, err
		}
		secret, previous = r.secret, r.previous
		facts := auditlog.Facts{Details: map[string]string{"new_key_id": r.successor.ID, "previous_key_id": k.ID}}
		return []*eventsv1.Event{r.event}, facts, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.RotateServerKeyResponse{Server: serverProto(srv, secret, now), Previous: toProto(previous, now)}, nil
}

// deadKey reports whether k can never work again at now: revoked or expired (a key in
// grace still works, and is rotated no further).
func deadKey(k *store.Key, now time.Time) bool {
	st := k.Status(now)
	return st == store.StatusRevoked || st == store.StatusExpired
}

// replaceDeadKey mints srv a fresh key of t (the servers type), as CreateServer does (the
// server's name and project, the type's capabilities, no expiry), in tx, where srv and its
// dead current key dead are locked (store.ChangeServer), and makes it srv's current key
// (store.ReplaceServerKey), taking the server-rotations cap. The dead key gets no grace
// and no successor: it stays as it is. The caller commits the key.created event.
func (s *Server) replaceDeadKey(ctx context.Context, tx pgx.Tx, p *auth.Principal, t *keyformat.Type, srv *store.Server, dead *store.Key, now time.Time) (*store.Key, string, error) {
	if err := s.mayManageType(p, t, now); err != nil {
		return nil, "", err
	}
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: srv.AccountID, Type: t.Name, Name: srv.Name, ProjectID: srv.ProjectID,
		Capabilities: slices.Clone(t.Capabilities), CreatedBy: p.Actor(), CreatedAt: now, ServerID: srv.ID,
	})
	if err != nil {
		return nil, "", err
	}
	if err := store.ReplaceServerKey(ctx, tx, dead, k, s.serverCaps.Rotations); err != nil {
		return nil, "", err
	}
	return k, secret, nil
}
