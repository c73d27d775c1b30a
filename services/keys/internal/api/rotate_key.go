package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
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
	if err := ids.Check("id", ids.Key, req.GetId()); err != nil {
		return nil, err
	}
	if req.GracePeriodSeconds != nil {
		if g := req.GetGracePeriodSeconds(); g < 0 || g > int32(maxGrace/time.Second) {
			return nil, invalid("grace_period_seconds must be between 0 and %d", int32(maxGrace/time.Second))
		}
	}
	// The binding cannot change, so it is checked before the key is locked: no call to
	// accounts is made while a row lock is held.
	cur, err := s.store.Get(ctx, p.AccountID, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.mayMintFor(ctx, cur); err != nil {
		return nil, err
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
		if err := mayRotateProjectKey(ctx, tx, t, k, now); err != nil {
			return nil, err
		}
		grace := t.RotationGrace.Duration
		if req.GracePeriodSeconds != nil {
			grace = time.Duration(req.GetGracePeriodSeconds()) * time.Second
		}
		var err error
		successor, secret, err = s.newKey(t, &store.Key{
			AccountID: k.AccountID, Type: k.Type, Name: k.Name, ProjectID: k.ProjectID,
			Environment: k.Environment, EnvironmentAddedAt: k.EnvironmentAddedAt, Capabilities: k.Capabilities, CreatedBy: p.Actor(),
			ExpiresAt: k.ExpiresAt, Metadata: k.Metadata, CreatedAt: now,
		})
		if err != nil {
			return nil, err
		}
		graceUntil := now.Add(grace)
		if err := store.Rotate(ctx, tx, k, successor, graceUntil, s.capsFor(t, true)...); err != nil {
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

// mayMintFor checks that a successor of k could work: its account is not suspended, its
// project still exists and k's environment is still in the stay k was minted in
// (liveBinding, verdict.Environments.Holds); the successor is minted in that stay too. A
// key of a deleted project is not_found's 404 (the project's); one whose environment was
// dropped (even if since added back) 409.
func (s *Server) mayMintFor(ctx context.Context, k *store.Key) error {
	proj, err := s.liveBinding(ctx, k.AccountID, k.ProjectID)
	if err != nil {
		return err
	}
	if k.ProjectID != "" && !environments(proj).Holds(k.Environment, k.EnvironmentAddedAt) {
		return apierr.New(apierr.Conflict, "environment %q of project %s was dropped after this key was minted (the project lists %v): its keys cannot be rotated", k.Environment, k.ProjectID, proj.GetEnvironments())
	}
	return nil
}
