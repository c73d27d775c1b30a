package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
)

// ListKeyTypes lists the configured key types: clients offer the right choices, and
// gateways parse and rate-limit keys exactly as configured here.
func (s *Server) ListKeyTypes(ctx context.Context, _ *keysv1.ListKeyTypesRequest) (*keysv1.ListKeyTypesResponse, error) {
	if _, err := auth.RequireAny(ctx); err != nil {
		return nil, err
	}
	var out []*keysv1.KeyType
	// Durations fit int32 seconds: keyformat.NewRegistry keeps them within MaxDuration.
	for _, t := range s.types.Types() {
		out = append(out, &keysv1.KeyType{
			Name: t.Name, Prefix: t.Prefix, Capabilities: t.Capabilities, Scope: string(t.Scope),
			RotationGraceSeconds: int32(t.RotationGrace.Seconds()), RequiresPlan: t.RequiresPlan, Browser: t.Browser,
			Encoding: string(t.Encoding), RandomBytes: int32(t.RandomBytes), Checksum: t.Checksum,
			LegacyPrefixes: t.LegacyPrefixes, RateLimitPerSecond: t.RateLimit.PerSecond,
			RateLimitBurst: int32(t.RateLimit.Burst), DataTtlSeconds: int32(t.DataTTL.Seconds()),
			Anonymous: t.Anonymous, Mintable: t.Mintable, ClaimGraceSeconds: int32(t.ClaimGrace.Seconds()),
		})
	}
	return &keysv1.ListKeyTypesResponse{KeyTypes: out}, nil
}
