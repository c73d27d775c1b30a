package auth

import (
	"context"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/verdict"
)

// Session is what a SessionResolver knows of a live session token.
type Session struct {
	AccountID string
	UserID    string
	SessionID string
	Plan      string
	// StepUpUntil is when the session's last password re-verification stops counting.
	StepUpUntil time.Time
	// Suspended: the account is not active (the other fields may then be empty).
	Suspended bool
}

// SessionResolver looks a session token up: (nil, nil) when no live session goes by it
// (unknown, expired, revoked or not a session token's shape); an error only when it cannot
// tell (a store or service that failed), which the caller sees as ErrUnavailable.
type SessionResolver interface {
	ResolveSession(ctx context.Context, token string) (*Session, error)
}

// Key is what a KeyResolver knows of an API key.
type Key struct {
	ID        string
	AccountID string
	// ProjectID is set for a key bound to a project: such a key never manages an account.
	ProjectID string
	// Environment is the environment a project key is bound to ("" for none).
	Environment string
	// Type is the key type's name.
	Type string
	// ServerID is set for a collector key, bound to a server (POST /v1/servers): such a
	// key sends that server's data to the ingest gateway and can do nothing else
	// (ErrCollectorKey).
	ServerID     string
	Capabilities []string
	// Plan is the account's plan, when the resolver knows it ("" otherwise).
	Plan string
	// Verdict is verdict.Decide's on using the key with no origin and no capability:
	// verdict.OK for a live key of an active account.
	Verdict verdict.Code
}

// KeyResolver looks an API key up (the keys service parses it with its key types and
// finds it by its keyed hash): (nil, nil) when no key goes by it; an error only when it
// cannot tell, which the caller sees as ErrUnavailable.
type KeyResolver interface {
	ResolveKey(ctx context.Context, token string) (*Key, error)
}

// Authenticator turns a bearer token into a principal; its Authenticate is the
// server.Authenticator of every management service. The token is checked against the
// bounds (CheckToken), then classified:
//   - the operator token (compared in constant time) is KindOperator, bound to no account;
//   - a token starting with SessionTokenPrefix is a session, resolved by Sessions;
//   - anything else is an API key, resolved by Keys: a live key of an active account with
//     no project is KindAccountKey with the key's capabilities; a live collector key (bound
//     to a server) is ErrCollectorKey for every call; one bound to a project is
//     KindProjectKey for the methods in ProjectKeysFor and ErrProjectKey for the rest; a
//     live browser-only key (a session key, which Keys finds origin_not_allowed without
//     an Origin) is ErrBrowserKey.
//
// Refusals are this package's errors: ErrBadToken, ErrBadSession, ErrProjectKey,
// ErrCollectorKey, ErrBrowserKey, ErrSuspended, ErrMalformed; a resolver that cannot tell is ErrUnavailable (503), and the
// caller's own cancellation stays a cancellation. A nil resolver accepts nothing of its
// kind.
type Authenticator struct {
	Operator OperatorToken
	Sessions SessionResolver
	Keys     KeyResolver
	// ProjectKeysFor names the gRPC methods (full names, as grpc.Method reports them) that
	// take a key bound to a project as their caller (KindProjectKey); nil for none.
	ProjectKeysFor map[string]bool
}

// Authenticate implements server.Authenticator.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if err := CheckToken(token); err != nil {
		return nil, err
	}
	switch {
	case a.Operator.Matches(token):
		return &Principal{Kind: KindOperator}, nil
	case strings.HasPrefix(token, SessionTokenPrefix):
		return a.session(ctx, token)
	default:
		return a.key(ctx, token)
	}
}

func (a *Authenticator) session(ctx context.Context, token string) (*Principal, error) {
	if a.Sessions == nil {
		return nil, ErrBadSession
	}
	s, err := a.Sessions.ResolveSession(ctx, token)
	switch {
	case err != nil:
		return nil, unavailable(ctx, "session", err)
	case s == nil:
		return nil, ErrBadSession
	case s.Suspended:
		return nil, ErrSuspended
	case s.AccountID == "":
		return nil, ErrBadSession
	}
	return &Principal{
		Kind:        KindUser,
		AccountID:   s.AccountID,
		UserID:      s.UserID,
		SessionID:   s.SessionID,
		Plan:        s.Plan,
		StepUpUntil: s.StepUpUntil,
	}, nil
}

func (a *Authenticator) key(ctx context.Context, token string) (*Principal, error) {
	if a.Keys == nil {
		return nil, ErrBadToken
	}
	k, err := a.Keys.ResolveKey(ctx, token)
	switch {
	case err != nil:
		return nil, unavailable(ctx, "key", err)
	case k == nil || k.AccountID == "":
		return nil, ErrBadToken
	case k.Verdict == verdict.AccountSuspended:
		return nil, ErrSuspended
	case k.Verdict == verdict.OriginNotAllowed:
		// Asked with no origin, only a live browser-only key is refused for its origin.
		return nil, ErrBrowserKey
	case k.Verdict != verdict.OK:
		// Malformed, unknown, revoked or expired: none says more than "not valid".
		return nil, ErrBadToken
	case k.ServerID != "":
		return nil, ErrCollectorKey
	case k.ProjectID != "":
		return a.projectKey(ctx, k)
	}
	return &Principal{
		Kind:         KindAccountKey,
		AccountID:    k.AccountID,
		KeyID:        k.ID,
		Capabilities: k.Capabilities,
		Plan:         k.Plan,
	}, nil
}

// projectKey is the principal of a live key bound to a project, for a method that takes
// one, and ErrProjectKey for any other call.
func (a *Authenticator) projectKey(ctx context.Context, k *Key) (*Principal, error) {
	if m, ok := grpc.Method(ctx); !ok || !a.ProjectKeysFor[m] {
		return nil, ErrProjectKey
	}
	return &Principal{
		Kind:         KindProjectKey,
		AccountID:    k.AccountID,
		KeyID:        k.ID,
		ProjectID:    k.ProjectID,
		Environment:  k.Environment,
		KeyType:      k.Type,
		Capabilities: k.Capabilities,
		Plan:         k.Plan,
	}, nil
}

// unavailable is the answer when a resolver could not tell: the caller's own cancellation
// or deadline as it is, anything else ErrUnavailable (the cause is logged, never sent).
func unavailable(ctx context.Context, kind string, err error) error {
	if ctx.Err() != nil {
		return apierr.FromError(ctx.Err())
	}
	logging.From(ctx).Warn("credentials cannot be checked", zap.String("kind", kind), zap.Error(err))
	return ErrUnavailable
}
