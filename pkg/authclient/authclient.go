// Package authclient authenticates callers for a service that owns neither sessions nor
// keys (the audit service): the operator token is checked locally, session tokens by the
// accounts service, account keys by the keys service.
package authclient

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/server"
)

// MaxTokenLen turns away absurd bearer tokens before any RPC.
const MaxTokenLen = 512

// CallTimeout bounds one Authenticate or VerifyKey call.
const CallTimeout = 5 * time.Second

// The errors a caller can see.
var (
	errBadToken = apierr.New(apierr.Unauthenticated,
		"the bearer token is not a valid session token, account key or operator token")
	errProjectKey = apierr.New(apierr.Unauthenticated,
		"a key bound to a project cannot call the management API; use an account key or a session")
	errSuspended   = apierr.New(apierr.AccountSuspended, "this account is suspended")
	errUnavailable = apierr.New(apierr.Unavailable, "credentials cannot be checked right now; retry shortly")
)

// New returns a server.Authenticator:
//   - the operator token (compared in constant time) is auth.KindOperator;
//   - a session token (auth.SessionTokenPrefix) is resolved by accounts'
//     InternalService.Authenticate into an auth.KindUser principal; its refusals
//     (unauthenticated, account_suspended) reach the caller as they are;
//   - anything else is verified by keys' VerifyKey: a valid key with no project (an
//     account-scoped management key) is an auth.KindAccountKey principal with the key's
//     capabilities; a project key or an invalid key is unauthenticated.
//
// Both calls carry the operator token and the request id. A service that cannot be
// reached, or fails, makes the call unavailable (503), never unauthenticated. The account
// key principal has no Plan: VerifyKey does not say it.
func New(accounts accountsv1.InternalServiceClient, keys keysv1.KeysServiceClient, operatorToken string) server.Authenticator {
	c := &client{accounts: accounts, keys: keys, operator: auth.OperatorToken(operatorToken)}
	return c.authenticate
}

type client struct {
	accounts accountsv1.InternalServiceClient
	keys     keysv1.KeysServiceClient
	operator auth.OperatorToken
}

func (c *client) authenticate(ctx context.Context, token string) (*auth.Principal, error) {
	if token == "" || len(token) > MaxTokenLen {
		return nil, errBadToken
	}
	if c.operator.Matches(token) {
		return &auth.Principal{Kind: auth.KindOperator}, nil
	}
	cctx, cancel := c.outgoing(ctx)
	defer cancel()
	if strings.HasPrefix(token, auth.SessionTokenPrefix) {
		return c.session(ctx, cctx, token)
	}
	return c.accountKey(ctx, cctx, token)
}

// outgoing is the context of a call to accounts or keys: the operator token as bearer,
// the request id passed on, and a timeout.
func (c *client) outgoing(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx := auth.OutgoingBearer(ctx, string(c.operator))
	if id := requestid.From(ctx); id != "" {
		cctx = metadata.AppendToOutgoingContext(cctx, requestid.MetadataKey, id)
	}
	return context.WithTimeout(cctx, CallTimeout)
}

func (c *client) session(ctx, cctx context.Context, token string) (*auth.Principal, error) {
	resp, err := c.accounts.Authenticate(cctx, &accountsv1.AuthenticateRequest{Token: token})
	if err != nil {
		return nil, remoteError(ctx, err, false)
	}
	p := resp.GetPrincipal()
	if p.GetAccountId() == "" {
		return nil, errBadToken
	}
	if p.GetAccountStatus() == "suspended" {
		return nil, errSuspended
	}
	principal := &auth.Principal{
		Kind:      auth.KindUser,
		AccountID: p.GetAccountId(),
		UserID:    p.GetUserId(),
		SessionID: p.GetSessionId(),
		Plan:      p.GetPlan(),
	}
	if t := p.GetStepUpExpiresAt(); t != nil {
		principal.StepUpUntil = t.AsTime()
	}
	return principal, nil
}

func (c *client) accountKey(ctx, cctx context.Context, token string) (*auth.Principal, error) {
	resp, err := c.keys.VerifyKey(cctx, &keysv1.VerifyKeyRequest{Key: token})
	if err != nil {
		return nil, remoteError(ctx, err, true)
	}
	if !resp.GetValid() {
		if resp.GetCode() == string(apierr.AccountSuspended) {
			return nil, errSuspended
		}
		return nil, errBadToken
	}
	k := resp.GetKey()
	switch {
	case k.GetAccountId() == "":
		return nil, errBadToken
	case k.GetProjectId() != "":
		return nil, errProjectKey
	}
	return &auth.Principal{
		Kind:         auth.KindAccountKey,
		AccountID:    k.GetAccountId(),
		KeyID:        k.GetId(),
		Capabilities: k.GetCapabilities(),
	}, nil
}

// remoteError maps a failed call. A Latchkey error from the other service passes through
// (for keys, a refusal of the request is a bad token); its internal errors and anything
// without a Latchkey error (transport failures, timeouts) are unavailable. The caller's own
// cancellation stays a cancellation.
func remoteError(ctx context.Context, err error, keys bool) error {
	if ctx.Err() != nil {
		return apierr.FromError(ctx.Err())
	}
	e := latchkeyError(err)
	if e == nil {
		return errUnavailable
	}
	switch e.Code {
	case apierr.Internal, apierr.Unavailable, apierr.DeadlineExceeded, apierr.Canceled:
		return errUnavailable
	case apierr.InvalidArgument, apierr.NotFound, apierr.Unauthenticated:
		if keys {
			return errBadToken
		}
	}
	return e
}

// latchkeyError is the *apierr.Error a Latchkey service sent, or nil when err carries
// none.
func latchkeyError(err error) *apierr.Error {
	var e *apierr.Error
	if errors.As(err, &e) {
		return e
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == apierr.Domain {
			return apierr.FromStatus(st)
		}
	}
	return nil
}
