package api

import (
	"context"
	"maps"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// UpdateKey changes the fields named in the mask: name, capabilities, expires_at, metadata.
func (s *Server) UpdateKey(ctx context.Context, req *keysv1.UpdateKeyRequest) (*keysv1.UpdateKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	in := req.GetKey()
	if !ids.Valid(ids.Key, in.GetId()) {
		return nil, errBadKeyID
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("nothing to update: send name, capabilities, expires_at or metadata")
	}
	now := s.now()
	k, err := s.store.Change(ctx, p.AccountID, in.GetId(), func(tx pgx.Tx, k *store.Key) (*eventsv1.Event, error) {
		t, ok := s.types.Lookup(k.Type)
		if !ok {
			return nil, invalid("key type %q is no longer configured", k.Type)
		}
		for _, path := range paths {
			switch path {
			case "name":
				if err := checkText("name", in.GetName(), maxName); err != nil {
					return nil, err
				}
				k.Name = in.GetName()
			case "capabilities":
				// Widening a management key is as sensitive as minting one.
				if err := s.mayManageType(p, t, now); err != nil {
					return nil, err
				}
				caps, err := capabilitiesFor(t, in.GetCapabilities())
				if err != nil {
					return nil, err
				}
				k.Capabilities = caps
			case "expires_at":
				exp, err := expiry(in.GetExpiresAt(), now)
				if err != nil {
					return nil, err
				}
				k.ExpiresAt = exp
			case "metadata":
				if err := checkMetadata(in.GetMetadata()); err != nil {
					return nil, err
				}
				k.Metadata = maps.Clone(in.GetMetadata())
			default:
				return nil, invalid("%q cannot be updated; only name, capabilities, expires_at and metadata can", path)
			}
		}
		if err := store.Update(ctx, tx, k); err != nil {
			return nil, err
		}
		ev := events.New(p.AccountID, requestid.From(ctx))
		ev.Payload = &eventsv1.Event_KeyUpdated{KeyUpdated: &eventsv1.KeyUpdated{KeyId: k.ID, KeyHash: k.Hash}}
		return ev, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.UpdateKeyResponse{Key: toProto(k, now)}, nil
}
