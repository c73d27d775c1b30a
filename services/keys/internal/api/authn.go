package api

import (
	"context"
	"strings"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// Authenticate resolves a bearer token: the operator token, a session token (through the
// accounts service), or an account key (looked up here by its keyed hash).
func (s *Server) Authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	if auth.OperatorToken(s.operator).Matches(token) {
		return &auth.Principal{Kind: auth.KindOperator}, nil
	}
	if strings.HasPrefix(token, auth.SessionTokenPrefix) {
		p, err := s.dir.Authenticate(ctx, token)
		if err != nil {
			return nil, apierr.FromError(err)
		}
		return &auth.Principal{
			Kind: auth.KindUser, AccountID: p.GetAccountId(), UserID: p.GetUserId(),
			SessionID: p.GetSessionId(), Plan: p.GetPlan(), StepUpUntil: p.GetStepUpExpiresAt().AsTime(),
		}, nil
	}
	parsed, err := s.types.Parse(token)
	if err != nil {
		return nil, errBadCredential
	}
	hash := s.hasher.Hash(token)
	k, err := s.store.ByHash(ctx, hash[:])
	if store.IsNotFound(err) {
		return nil, errBadCredential
	}
	if err != nil {
		return nil, err
	}
	if parsed.Type.Scope != keyformat.ScopeAccount {
		return nil, errNotManagement
	}
	if st := k.Status(s.now()); st != store.StatusActive && st != store.StatusGrace {
		return nil, errBadCredential
	}
	acct, err := s.dir.Account(ctx, k.AccountID, false)
	if err != nil {
		return nil, apierr.FromError(err)
	}
	if acct.GetStatus() == "suspended" {
		return nil, apierr.New(apierr.AccountSuspended, "this account is suspended")
	}
	s.usage.Used(k.ID)
	return &auth.Principal{
		Kind: auth.KindAccountKey, AccountID: k.AccountID, KeyID: k.ID,
		Capabilities: k.Capabilities, Plan: acct.GetPlan(),
	}, nil
}
