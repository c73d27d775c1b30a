package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
)

// GetKey reads one of the caller's keys.
func (s *Server) GetKey(ctx context.Context, req *keysv1.GetKeyRequest) (*keysv1.GetKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:read")
	if err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Key, req.GetId()); err != nil {
		return nil, err
	}
	k, err := s.store.Get(ctx, p.AccountID, req.GetId())
	if err != nil {
		return nil, err
	}
	return &keysv1.GetKeyResponse{Key: toProto(k, s.now())}, nil
}
