package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

func ts(t *time.Time) *timestamppb.Timestamp {
	if t == nil {
		return nil
	}
	return timestamppb.New(*t)
}

// toProto renders a stored key; there is no secret in it to leak.
func toProto(k *store.Key, now time.Time) *keysv1.Key {
	return &keysv1.Key{
		Id:            k.ID,
		Type:          k.Type,
		Name:          k.Name,
		DisplayPrefix: k.DisplayPrefix,
		AccountId:     k.AccountID,
		ProjectId:     k.ProjectID,
		Environment:   k.Environment,
		Capabilities:  k.Capabilities,
		Status:        k.Status(now),
		CreatedAt:     timestamppb.New(k.CreatedAt),
		CreatedBy:     k.CreatedBy,
		ExpiresAt:     ts(k.ExpiresAt),
		RevokedAt:     ts(k.RevokedAt),
		RevokeReason:  k.RevokeReason,
		GraceUntil:    ts(k.GraceUntil),
		RotatedToId:   k.RotatedToID,
		LastUsedAt:    ts(k.LastUsedAt),
		Metadata:      k.Metadata,
		ExposedAt:     ts(k.ExposedAt),
		ServerId:      k.ServerID,
	}
}
