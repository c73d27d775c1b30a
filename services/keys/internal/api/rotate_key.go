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
	"github.com/latchkey/latchkey/pkg/quota"
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
	var r *rotation
	old, err := s.store.Change(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, k *store.Key) (*eventsv1.Event, error) {
		var grace *time.Duration
		if req.GracePeriodSeconds != nil {
			g := time.Duration(req.GetGracePeriodSeconds()) * time.Second
			grace = &g
		}
		var err error
		r, err = s.rotateLocked(ctx, tx, p, k, grace, nil, now)
		if err != nil {
			return nil, err
		}
		return r.event, nil
	})
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.RotateKeyResponse{Key: toProto(r.successor, now), Secret: r.secret, Previous: toProto(old, now)}, nil
}

// rotation is what rotateLocked did.
type rotation struct {
	// successor is the new key and secret its plaintext.
	successor *store.Key
	secret    string
	// previous is the rotated key as it is now, in grace.
	previous *store.Key
	// event is the key.rotated event, for the caller's outbox.
	event *eventsv1.Event
}

// rotateLocked mints the successor of k, locked in tx, with the same binding (its server
// included) and capabilities, and puts k in grace: grace long, or the type's rotation
// grace when nil. It takes one use of each of caps, or, when caps is nil, of capsFor's. A
// key of a server is the server's current key after (store.MoveServerKey) when k was, and
// the server must be live (store.LockServer); rotating a key of a server needs
// servers:manage too (mayBindServer). The caller has checked k's binding
// (mayMintFor) and commits the returned event with tx.
func (s *Server) rotateLocked(ctx context.Context, tx pgx.Tx, p *auth.Principal, k *store.Key, grace *time.Duration, caps []quota.Cap, now time.Time) (*rotation, error) {
	if err := mayBindServer(p, k.ServerID); err != nil {
		return nil, err
	}
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
	g := t.RotationGrace.Duration
	if grace != nil {
		g = *grace
	}
	if caps == nil {
		caps = s.capsFor(t, true)
	}
	successor, secret, err := s.newKey(t, &store.Key{
		AccountID: k.AccountID, Type: k.Type, Name: k.Name, ProjectID: k.ProjectID,
		Environment: k.Environment, EnvironmentAddedAt: k.EnvironmentAddedAt, Capabilities: k.Capabilities, CreatedBy: p.Actor(),
		ExpiresAt: k.ExpiresAt, Metadata: k.Metadata, CreatedAt: now, ServerID: k.ServerID,
	})
	if err != nil {
		return nil, err
	}
	if k.ServerID != "" {
		if err := store.LockServer(ctx, tx, k.AccountID, k.ServerID); err != nil {
			return nil, err
		}
	}
	graceUntil := now.Add(g)
	if err := store.Rotate(ctx, tx, k, successor, graceUntil, caps...); err != nil {
		return nil, err
	}
	if k.ServerID != "" {
		if err := store.MoveServerKey(ctx, tx, k.AccountID, k.ServerID, k.ID, successor.ID); err != nil {
			return nil, err
		}
	}
	ev := events.New(p.AccountID, requestid.From(ctx))
	ev.Payload = &eventsv1.Event_KeyRotated{KeyRotated: &eventsv1.KeyRotated{
		KeyId: k.ID, KeyHash: k.Hash, GraceUntil: timestamppb.New(graceUntil),
		NewKeyId: successor.ID, NewKeyHash: successor.Hash,
	}}
	previous := *k
	previous.GraceUntil, previous.RotatedToID = &graceUntil, successor.ID
	return &rotation{successor: successor, secret: secret, previous: &previous, event: ev}, nil
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
