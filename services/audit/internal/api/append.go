package api

import (
	"context"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/record"
)

// Append stores one event (operator token only) exactly as the JetStream consumer does:
// once by id, at the end of its account's chain. Chain fields in the request are ignored.
// An event without a time gets the time it arrived.
func (s *Server) Append(ctx context.Context, req *auditv1.AppendRequest) (*auditv1.AppendResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if req.GetEvent() == nil {
		return nil, errNoEvent
	}
	c, err := record.FromProto(req.GetEvent(), "", s.now())
	if err != nil {
		return nil, invalid("event: %v", err)
	}
	stored, err := s.store.Append(ctx, []chain.Content{c})
	if err != nil {
		return nil, postgres.Error(err, nil)
	}
	return &auditv1.AppendResponse{Stored: stored[0]}, nil
}
