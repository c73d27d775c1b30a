package api

import (
	"context"
	"slices"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// anonymousCreator is the created_by of an anonymous key: nobody signed in minted it.
const anonymousCreator = "anonymous"

// errNoAnonymousType answers POST /v1/anonymous-keys under a profile with no anonymous type.
var errNoAnonymousType = apierr.New(apierr.NotFound, "this deployment's key profile (LATCHKEY_KEY_PROFILE) has no anonymous key type: sign up and create a key instead")

// CreateAnonymousKey mints a key of the profile's anonymous type (keyformat.Registry.Anonymous)
// for no account, with no credentials: it belongs to no account, project or environment,
// never expires, and carries the type's capabilities. Each call takes a token from the
// caller's address's own bucket (LATCHKEY_LIMIT_ANONYMOUS; 429 rate_limited, tier "ip").
// Errors: not_found (404) when the profile has no anonymous type.
func (s *Server) CreateAnonymousKey(ctx context.Context, _ *keysv1.CreateAnonymousKeyRequest) (*keysv1.CreateAnonymousKeyResponse, error) {
	if err := s.anonymous.Take(ctx); err != nil {
		return nil, err
	}
	t, ok := s.types.Anonymous()
	if !ok {
		return nil, errNoAnonymousType
	}
	now := s.now()
	k, secret, err := s.newKey(t, &store.Key{
		Type: t.Name, Capabilities: slices.Clone(t.Capabilities), CreatedBy: anonymousCreator, CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	if err := s.insertKey(ctx, k); err != nil {
		return nil, err
	}
	return &keysv1.CreateAnonymousKeyResponse{Key: toProto(k, now), Secret: secret}, nil
}
