package api

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
	"github.com/latchkey/latchkey/services/accounts/internal/token"
)

// maxBearerLen turns away absurd tokens before any lookup or RPC.
const maxBearerLen = 512

// keysCallTimeout bounds one VerifyKey call to the keys service.
const keysCallTimeout = 5 * time.Second

// Authenticator turns bearer tokens into principals: the operator token, session tokens
// (lks_…) and, through the keys service, account keys.
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
	if len(tok) > maxBearerLen {
		return nil, errBadToken
	}
	if a.Operator.Matches(tok) {
		return &auth.Principal{Kind: auth.KindOperator}, nil
	}
	if strings.HasPrefix(tok, token.Prefix) {
		p, _, err := a.session(ctx, tok)
		return p, err
	}
	if a.Keys == nil {
		return nil, errBadToken
	}
	return a.accountKey(ctx, tok)
}

// session resolves a session token to its user principal and account.
func (a *Authenticator) session(ctx context.Context, tok string) (*auth.Principal, store.Account, error) {
	if !token.WellFormed(tok) {
		return nil, store.Account{}, errSessionInvalid
	}
	sess, acct, err := a.Store.LiveSession(ctx, token.Hash(tok), now())
	if err != nil {
		return nil, store.Account{}, storeErr(err, errSessionInvalid)
	}
	if acct.Status != store.StatusActive {
		return nil, store.Account{}, errAccountSuspended
	}
	return &auth.Principal{
		Kind:        auth.KindUser,
		AccountID:   acct.ID,
		UserID:      sess.UserID,
		SessionID:   sess.ID,
		Plan:        acct.Plan,
		StepUpUntil: sess.StepUpUntil,
	}, acct, nil
}

// accountKey asks the keys service about an API key; only account-scoped keys (no
// project) may manage an account.
func (a *Authenticator) accountKey(ctx context.Context, tok string) (*auth.Principal, error) {
	cctx, cancel := context.WithTimeout(auth.OutgoingBearer(ctx, string(a.Operator)), keysCallTimeout)
	defer cancel()
	cctx = metadata.AppendToOutgoingContext(cctx, requestid.MetadataKey, requestid.From(ctx))
	resp, err := a.Keys.VerifyKey(cctx, &keysv1.VerifyKeyRequest{Key: tok})
	if err != nil {
		e := apierr.FromError(err)
		switch e.Code {
		case apierr.InvalidArgument, apierr.NotFound, apierr.Unauthenticated:
			return nil, errBadToken
		case apierr.Canceled:
			return nil, e
		}
		logging.From(ctx).Warn("keys: VerifyKey failed", zap.String("code", string(e.Code)), zap.Error(err))
		return nil, errKeysUnavailable
	}
	if !resp.GetValid() {
		if resp.GetCode() == string(apierr.AccountSuspended) {
			return nil, errAccountSuspended
		}
		return nil, errBadToken
	}
	k := resp.GetKey()
	if k.GetAccountId() == "" {
		return nil, errBadToken
	}
	if k.GetProjectId() != "" {
		return nil, errProjectKey
	}
	acct, err := a.Store.Account(ctx, k.GetAccountId())
	if err != nil {
		return nil, storeErr(err, errBadToken)
	}
	if acct.Status != store.StatusActive {
		return nil, errAccountSuspended
	}
	return &auth.Principal{
		Kind:         auth.KindAccountKey,
		AccountID:    acct.ID,
		KeyID:        k.GetId(),
		Capabilities: k.GetCapabilities(),
		Plan:         acct.Plan,
	}, nil
}
