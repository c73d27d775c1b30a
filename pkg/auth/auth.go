// Package auth is the one authenticator of Latchkey: the principal a call is made by and
// how it travels in a context (this file); how a credential is presented, its bounds and
// the errors a caller sees (credential.go); how a token is classified and turned into a
// principal (authenticator.go); and the resolvers that ask the accounts and keys services
// (remote.go). Each service plugs in how it resolves sessions and keys; nothing else about
// authentication is decided anywhere else.
package auth

import (
	"context"
	"slices"
	"time"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// Kind says what authenticated a call.
type Kind string

// The kinds of principal.
const (
	// KindUser is a person with a session token.
	KindUser Kind = "user"
	// KindAccountKey is a management (account) API key.
	KindAccountKey Kind = "account_key"
	// KindOperator is the platform team, with the operator token; it is not bound to an
	// account and may call admin and internal RPCs.
	KindOperator Kind = "operator"
	// KindProjectKey is an API key bound to a project (an ingest key), authenticating one
	// of the few calls that take one (Authenticator.ProjectKeysFor: minting a browser
	// session key). Require and RequireAny refuse it (ErrProjectKey): it manages nothing.
	KindProjectKey Kind = "project_key"
)

// Principal is who makes a call.
type Principal struct {
	Kind      Kind
	AccountID string
	UserID    string
	SessionID string
	// KeyID is the key's id when Kind is KindAccountKey or KindProjectKey.
	KeyID string
	// ProjectID, Environment and KeyType are a project key's binding and type name
	// (KindProjectKey; Environment is "" for a key bound to a whole project).
	ProjectID   string
	Environment string
	KeyType     string
	// Capabilities bound an API key; users hold every capability of their account.
	Capabilities []string
	Plan         string
	// StepUpUntil is when the session's last password re-verification stops counting.
	StepUpUntil time.Time
}

// Actor is the id recorded as the author of a change.
func (p *Principal) Actor() string {
	switch p.Kind {
	case KindUser:
		return p.UserID
	case KindAccountKey, KindProjectKey:
		return p.KeyID
	default:
		return "operator"
	}
}

// Can reports whether the principal holds a capability.
func (p *Principal) Can(capability string) bool {
	switch p.Kind {
	case KindUser, KindOperator:
		return true
	default:
		return slices.Contains(p.Capabilities, capability)
	}
}

type ctxKey struct{}

type errKey struct{}

// With stores p in ctx.
func With(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// WithError records why the presented credential was refused. Calls that need no
// credential (sign-up, login) go on regardless; the Require functions return this error.
func WithError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, errKey{}, err)
}

// From returns the principal of ctx, or nil for an unauthenticated call.
func From(ctx context.Context) *Principal {
	p, _ := ctx.Value(ctxKey{}).(*Principal)
	return p
}

// refused returns the credential's refusal, or fallback when none was presented.
func refused(ctx context.Context, fallback string) error {
	if err, ok := ctx.Value(errKey{}).(error); ok {
		return err
	}
	return apierr.New(apierr.Unauthenticated, "%s", fallback)
}

// RequireAny returns the caller, whoever it is, but a project key (ErrProjectKey).
func RequireAny(ctx context.Context) (*Principal, error) {
	p := From(ctx)
	switch {
	case p == nil:
		return nil, refused(ctx, "this call needs a session token, an account key or the operator token")
	case p.Kind == KindProjectKey:
		return nil, ErrProjectKey
	}
	return p, nil
}

// Require returns the caller bound to an account holding capability, or the error to send;
// a project key is refused (ErrProjectKey) whatever it holds.
func Require(ctx context.Context, capability string) (*Principal, error) {
	p := From(ctx)
	if p == nil || p.AccountID == "" {
		return nil, refused(ctx, "this call needs a session token or an account key")
	}
	if p.Kind == KindProjectKey {
		return nil, ErrProjectKey
	}
	if !p.Can(capability) {
		return nil, apierr.New(apierr.InsufficientCapability, "this key lacks the %q capability", capability)
	}
	return p, nil
}

// RequireKind returns the caller if it is of one of kinds. need says who may call, for the
// errors: without a credential the refusal of the one presented (or unauthenticated, 401),
// with one of another kind permission_denied (403).
func RequireKind(ctx context.Context, need string, kinds ...Kind) (*Principal, error) {
	p := From(ctx)
	switch {
	case p == nil:
		return nil, refused(ctx, "this call needs "+need)
	case !slices.Contains(kinds, p.Kind):
		return nil, apierr.New(apierr.PermissionDenied, "this call needs %s, not %s", need, kindNames[p.Kind])
	}
	return p, nil
}

// kindNames say what each kind of caller is, in errors.
var kindNames = map[Kind]string{
	KindUser:       "a session",
	KindAccountKey: "an account key",
	KindOperator:   "the operator token",
	KindProjectKey: "a project key",
}

// RequireUser returns the caller if it is a logged-in user.
func RequireUser(ctx context.Context) (*Principal, error) {
	p := From(ctx)
	if p == nil || p.Kind != KindUser {
		return nil, refused(ctx, "this call needs a session token")
	}
	return p, nil
}

// RequireOperator returns the caller if it presented the operator token.
func RequireOperator(ctx context.Context) (*Principal, error) {
	p := From(ctx)
	if p == nil || p.Kind != KindOperator {
		return nil, refused(ctx, "this call needs the operator token")
	}
	return p, nil
}
