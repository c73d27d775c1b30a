package auth

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// CallTimeout bounds one call to another service made on a caller's behalf.
const CallTimeout = 5 * time.Second

// Outgoing is the context of a call to another Latchkey service on behalf of the call in
// ctx: the operator token as bearer, the request id passed on, and CallTimeout.
func Outgoing(ctx context.Context, operator OperatorToken) (context.Context, context.CancelFunc) {
	cctx := OutgoingBearer(ctx, string(operator))
	if id := requestid.From(ctx); id != "" {
		cctx = setOutgoing(cctx, requestid.MetadataKey, id)
	}
	return context.WithTimeout(cctx, CallTimeout)
}

// NewRemote is the Authenticator of a service that owns neither sessions nor keys (the
// audit service): sessions through accounts, keys through keys.
func NewRemote(accounts accountsv1.InternalServiceClient, keys keysv1.KeysServiceClient, operator string) *Authenticator {
	op := OperatorToken(operator)
	return &Authenticator{
		Operator: op,
		Sessions: RemoteSessions{Client: accounts, Operator: op},
		Keys:     RemoteKeys{Client: keys, Operator: op},
	}
}

// RemoteSessions resolves session tokens with accounts' InternalService.Authenticate.
type RemoteSessions struct {
	Client   accountsv1.InternalServiceClient
	Operator OperatorToken
}

// ResolveSession implements SessionResolver. Accounts answers account_suspended for a
// live session of a suspended account, and refuses any other token it does not know, which
// is (nil, nil); any other failure is an error.
func (r RemoteSessions) ResolveSession(ctx context.Context, token string) (*Session, error) {
	cctx, cancel := Outgoing(ctx, r.Operator)
	defer cancel()
	resp, err := r.Client.Authenticate(cctx, &accountsv1.AuthenticateRequest{Token: token})
	if latchkeyCode(err) == apierr.AccountSuspended {
		return &Session{Suspended: true}, nil
	}
	if err != nil {
		return nil, refusal(err)
	}
	p := resp.GetPrincipal()
	if p.GetAccountId() == "" {
		return nil, nil
	}
	s := &Session{
		AccountID: p.GetAccountId(),
		UserID:    p.GetUserId(),
		SessionID: p.GetSessionId(),
		Plan:      p.GetPlan(),
	}
	if t := p.GetStepUpExpiresAt(); t != nil {
		s.StepUpUntil = t.AsTime()
	}
	return s, nil
}

// RemoteKeys resolves API keys with keys' VerifyKey.
type RemoteKeys struct {
	Client   keysv1.KeysServiceClient
	Operator OperatorToken
}

// ResolveKey implements KeyResolver. Keys' refusal of the request is (nil, nil); any other
// failure is an error.
func (r RemoteKeys) ResolveKey(ctx context.Context, token string) (*Key, error) {
	cctx, cancel := Outgoing(ctx, r.Operator)
	defer cancel()
	resp, err := r.Client.VerifyKey(cctx, &keysv1.VerifyKeyRequest{Key: token})
	if err != nil {
		return nil, refusal(err)
	}
	return KeyFromVerify(resp), nil
}

// KeyFromVerify reads a VerifyKey answer (asked with no origin and no capability) as a
// Key; nil when it names no key.
func KeyFromVerify(resp *keysv1.VerifyKeyResponse) *Key {
	k := resp.GetKey()
	if k == nil {
		return nil
	}
	return &Key{
		ID:           k.GetId(),
		AccountID:    k.GetAccountId(),
		ProjectID:    k.GetProjectId(),
		Environment:  k.GetEnvironment(),
		Type:         k.GetType(),
		ServerID:     k.GetServerId(),
		Capabilities: k.GetCapabilities(),
		Verdict:      verdict.Code(resp.GetCode()),
	}
}

// refusal reads a failed call to a resolving service: nil when the service itself (a
// Latchkey error, not a transport's status) refused the request or the token
// (invalid_argument, not_found, unauthenticated), which means the token names nothing;
// err otherwise (unreachable, timed out, failed).
func refusal(err error) error {
	switch latchkeyCode(err) {
	case apierr.InvalidArgument, apierr.NotFound, apierr.Unauthenticated:
		return nil
	}
	return err
}

// latchkeyCode is the code of the Latchkey error a service sent, or "" when err is nil or
// carries none (a transport's own status).
func latchkeyCode(err error) apierr.Code {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == apierr.Domain {
			return apierr.Code(info.GetReason())
		}
	}
	return ""
}
