package api

import (
	"context"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// RotateServerKey rotates one of the caller's servers' current key as RotateKey does
// (rotateLocked), with the type's rotation grace, and makes the successor the server's
// key; it answers like CreateServer, with the new key's plaintext in server.api_key, and
// the old key, in grace. It takes the hourly server-rotations cap (not the rotations cap
// of RotateKey). Errors: not_found for a server that is not the caller's or was deleted;
// conflict when the server's key is no longer active (revoked by DeleteKey, say);
// rate_limited (tier hourly) at the cap.
func (v serversServer) RotateServerKey(ctx context.Context, req *keysv1.RotateServerKeyRequest) (*keysv1.RotateServerKeyResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, "servers:manage")
	if err != nil {
		return nil, err
	}
	if _, err := s.serversType(); err != nil {
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
	var r *rotation
	srv, err := s.store.ChangeServer(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, _ *store.Server, k *store.Key) ([]*eventsv1.Event, auditlog.Facts, error) {
		var err error
		if r, err = s.rotateLocked(ctx, tx, p, k, nil, []quota.Cap{s.serverCaps.Rotations}, now); err != nil {
			return nil, auditlog.Facts{}, err
		}
		facts := auditlog.Facts{Details: map[string]string{"new_key_id": r.successor.ID, "previous_key_id": k.ID}}
		return []*eventsv1.Event{r.event}, facts, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.RotateServerKeyResponse{Server: serverProto(srv, r.secret), Previous: toProto(r.previous, now)}, nil
}
