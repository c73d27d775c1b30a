package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
)

// GetServer reads one of the caller's servers, never its key's plaintext. A deleted
// server is not_found.
func (v serversServer) GetServer(ctx context.Context, req *keysv1.GetServerRequest) (*keysv1.GetServerResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, capServers)
	if err != nil {
		return nil, err
	}
	if _, err := s.serversType(); err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Server, req.GetId()); err != nil {
		return nil, err
	}
	srv, err := s.store.GetServer(ctx, p.AccountID, req.GetId())
	if err != nil {
		return nil, err
	}
	return &keysv1.GetServerResponse{Server: serverProto(srv, "", s.now())}, nil
}
