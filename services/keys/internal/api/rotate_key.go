package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// RotateKey issues a successor with the same binding and capabilities, and keeps the old
// key working until the grace period ends (the type's, unless the call gives one).
func (s *Server) RotateKey(ctx context.Context, req *keysv1.RotateKeyRequest) (*keysv1.RotateKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	if !ids.Valid(ids.Key, req.GetId()) {
		return nil, errBadKeyID
	}
	if req.GracePeriodSeconds != nil {
		if g := req.GetGracePeriodSeconds(); g < 0 || g > int32(maxGrace/time.Second) {
			return nil, invalid("grace_period_seconds must be between 0 and %d", int32(maxGrace/time.Second))
		}
	}
	now := s.now()
	var (
		successor *store.Key
		secret    string
	)
	old, err := s.store.Change(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, k *store.Key) (*eventsv1.Event, error) {
		if k.Status(now) != store.StatusActive {
			return nil, errNotActive
		}
		t, ok := s.types.Lookup(k.Type)
		if !ok {
			return nil, invalid("key type %q is no longer configured", k.Type)
		}
		if err := s.mayManageType(p, t, now); err != nil {
			return nil, err
		}
		if err := s.takeQuota(ctx, p.AccountID, "rotate keys", s.caps.Rotations); err != nil {
			return nil, err
		}
		if t.Scope == keyformat.ScopeAccount {
			if err := s.takeQuota(ctx, p.AccountID, "create or rotate account keys", s.caps.AccountKeys); err != nil {
				return nil, err
			}
		}
		grace := t.RotationGrace.Duration
		if req.GracePeriodSeconds != nil {
			grace = time.Duration(req.GetGracePeriodSeconds()) * time.Second
		}
		var err error
		successor, secret, err = s.newKey(t, &store.Key{
			AccountID: k.AccountID, Type: k.Type, Name: k.Name, ProjectID: k.ProjectID,
			Environment: k.Environment, Capabilities: k.Capabilities, CreatedBy: p.Actor(),
			ExpiresAt: k.ExpiresAt, Metadata: k.Metadata, CreatedAt: now,
		})
		if err != nil {
			return nil, err
		}
		graceUntil := now.Add(grace)
		if err := store.Rotate(ctx, tx, k, successor, graceUntil); err != nil {
			return nil, err
		}
		ev := events.New(p.AccountID, requestid.From(ctx))
		ev.Payload = &eventsv1.Event_KeyRotated{KeyRotated: &eventsv1.KeyRotated{
			KeyId: k.ID, KeyHash: k.Hash, GraceUntil: timestamppb.New(graceUntil),
			NewKeyId: successor.ID, NewKeyHash: successor.Hash,
		}}
		return ev, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.RotateKeyResponse{Key: toProto(successor, now), Secret: secret, Previous: toProto(old, now)}, nil
}
