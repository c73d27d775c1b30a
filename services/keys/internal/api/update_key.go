package api

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// UpdateKey changes the fields named in the mask: name, capabilities, expires_at, metadata.
// What it may do to a key's life and rights is mayChangeLife's to say.
func (s *Server) UpdateKey(ctx context.Context, req *keysv1.UpdateKeyRequest) (*keysv1.UpdateKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	in := req.GetKey()
	if err := ids.Check("id", ids.Key, in.GetId()); err != nil {
		return nil, err
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
		before := *k
		for _, path := range paths {
			switch path {
			case "name":
				if err := checkText("name", in.GetName(), maxName); err != nil {
					return nil, err
				}
				k.Name = in.GetName()
			case "capabilities":
				caps, err := capabilitiesFor(t, in.GetCapabilities())
				if err != nil {
					return nil, err
				}
				k.Capabilities = caps
			case "expires_at":
				if err := perProjectFields(t, "", in.GetExpiresAt()); err != nil {
					return nil, err
				}
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
		if err := s.mayChangeLife(p, t, &before, k, now); err != nil {
			return nil, err
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

// mayChangeLife is the one rule on what an update may do to a key's life (expires_at) and
// rights (capabilities), whatever fields the update names:
//   - a key that can no longer be used (revoked, expired, or past its rotation grace) keeps
//     both as they are, so no update revives it: 409 conflict;
//   - widening either (a later or removed expiry, a capability the key did not have) is as
//     sensitive as minting a key of its type: mayManageType, so for an account key a
//     session re-verified within the step-up window, and never another account key.
//
// Narrowing a usable key (an earlier expiry, fewer capabilities) needs no step-up.
func (s *Server) mayChangeLife(p *auth.Principal, t *keyformat.Type, before, after *store.Key, now time.Time) error {
	laterExpiry := after.ExpiresAt == nil && before.ExpiresAt != nil ||
		after.ExpiresAt != nil && before.ExpiresAt != nil && after.ExpiresAt.After(*before.ExpiresAt)
	moreRights := !subset(after.Capabilities, before.Capabilities)
	fewerRights := !subset(before.Capabilities, after.Capabilities)
	if sameTime(before.ExpiresAt, after.ExpiresAt) && !moreRights && !fewerRights {
		return nil
	}
	if st := before.Status(now); st != store.StatusActive && st != store.StatusGrace {
		return errNotUsable
	}
	if laterExpiry || moreRights {
		return s.mayManageType(p, t, now)
	}
	return nil
}

func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}
