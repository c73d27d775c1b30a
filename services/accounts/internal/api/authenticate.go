package api

import (
	"context"
	"errors"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
	"github.com/latchkey/latchkey/services/accounts/internal/token"
)

// Authenticator is what the accounts service plugs into auth.Authenticator: session
// tokens resolved from its own store, account keys through the keys service and checked
// against the account as stored here.
type Authenticator struct {
	Store *store.Store
	// Operator is the configured operator token.
	Operator auth.OperatorToken
	// Keys verifies API keys; nil when no keys service is configured, and then only
	// sessions and the operator token authenticate.
	Keys keysv1.KeysServiceClient
}

// Authenticate is the server.Authenticator of the accounts service.
func (a *Authenticator) Authenticate(ctx context.Context, tok string) (*auth.Principal, error) {
	authn := auth.Authenticator{Operator: a.Operator, Sessions: a, Keys: a}
	return authn.Authenticate(ctx, tok)
}

// ResolveSession implements auth.SessionResolver from the store; InternalService.Authenticate
// answers other services with it.
func (a *Authenticator) ResolveSession(ctx context.Context, tok string) (*auth.Session, error) {
	if !token.WellFormed(tok) {
		return nil, nil
	}
	sess, acct, err := a.Store.LiveSession(ctx, token.Hash(tok), now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &auth.Session{
		AccountID:   acct.ID,
		UserID:      sess.UserID,
		SessionID:   sess.ID,
		Plan:        acct.Plan,
		StepUpUntil: sess.StepUpUntil,
		Suspended:   acct.Status != store.StatusActive,
	}, nil
}

// ResolveKey implements auth.KeyResolver: the keys service decides on the key, and this
// service's own record of the account, fresher than the keys service's cache of it, gives
// the plan and may still find the account suspended.
func (a *Authenticator) ResolveKey(ctx context.Context, tok string) (*auth.Key, error) {
	if a.Keys == nil {
		return nil, nil
	}
	k, err := auth.RemoteKeys{Client: a.Keys, Operator: a.Operator}.ResolveKey(ctx, tok)
	if err != nil || k == nil || k.AccountID == "" {
		return k, err
	}
	acct, err := a.Store.Account(ctx, k.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k.Plan = acct.Plan
	if acct.Status != store.StatusActive && k.Verdict == verdict.OK {
		k.Verdict = verdict.AccountSuspended
	}
	return k, nil
}
