package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat/typepb"
)

// ListKeyTypes lists the configured key types: clients offer the right choices, and
// gateways parse and rate-limit keys exactly as configured here, and word their refusals
// as the profile's gateway_errors say (unset for Latchkey's envelope).
func (s *Server) ListKeyTypes(ctx context.Context, _ *keysv1.ListKeyTypesRequest) (*keysv1.ListKeyTypesResponse, error) {
	if _, err := auth.RequireAny(ctx); err != nil {
		return nil, err
	}
	return &keysv1.ListKeyTypesResponse{
		KeyTypes:      typepb.ToProtoList(s.types),
		GatewayErrors: typepb.GatewayErrorsToProto(s.types.GatewayErrors()),
	}, nil
}
