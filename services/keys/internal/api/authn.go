package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
)

// projectKeyCalls are the calls a key bound to a project may make (auth.KindProjectKey):
// an ingest key mints browser session keys for its project.
var projectKeyCalls = map[string]bool{keysv1.KeysService_CreateSessionKey_FullMethodName: true}

// Authenticate is the keys service's server.Authenticator: auth.Authenticator with account
// keys resolved here (ResolveKey) and session tokens by the accounts service.
func (s *Server) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	a := auth.Authenticator{Operator: auth.OperatorToken(s.operator), Sessions: s.dir, Keys: s, ProjectKeysFor: projectKeyCalls}
	return a.Authenticate(ctx, token)
}

// ResolveKey implements auth.KeyResolver with this service's own store: a key is decided
// exactly as VerifyKey decides it for the operator, with no origin and no capability.
func (s *Server) ResolveKey(ctx context.Context, token string) (*auth.Key, error) {
	resp, acct, err := s.verify(ctx, token, "", false, "", "")
	if err != nil {
		return nil, err
	}
	k := auth.KeyFromVerify(resp)
	if k != nil {
		k.Plan = acct.GetPlan()
	}
	return k, nil
}
