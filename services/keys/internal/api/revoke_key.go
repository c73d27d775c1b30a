package api

import (
	"context"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// RevokeKey stops a key at once; the row stays for history. Revoking twice is a no-op.
func (s *Server) RevokeKey(ctx context.Context, req *keysv1.RevokeKeyRequest) (*keysv1.RevokeKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	if !ids.Valid(ids.Key, req.GetId()) {
		return nil, errBadKeyID
	}
	if err := checkText("reason", req.GetReason(), maxReason); err != nil {
		return nil, err
	}
	now := s.now()
	k, err := s.store.Change(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, k *store.Key) (*eventsv1.Event, error) {
		if k.RevokedAt != nil {
			return nil, nil
		}
		if err := store.Revoke(ctx, tx, k, now, req.GetReason()); err != nil {
			return nil, err
		}
		ev := events.New(p.AccountID, requestid.From(ctx))
		ev.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: k.ID, KeyHash: k.Hash, Reason: req.GetReason()}}
		return ev, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.RevokeKeyResponse{Key: toProto(k, now)}, nil
}
