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
)

// Principal is who makes a call.
type Principal struct {
	Kind      Kind
	AccountID string
	UserID    string
	SessionID string
	// KeyID is the account key's id when Kind is KindAccountKey.
	KeyID string
	// Capabilities bound an account key; users hold every capability of their account.
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
	case KindAccountKey:
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

// RequireAny returns the caller, whoever it is.
func RequireAny(ctx context.Context) (*Principal, error) {
	if p := From(ctx); p != nil {
		return p, nil
	}
	return nil, refused(ctx, "this call needs a session token, an account key or the operator token")
}

// Require returns the caller bound to an account holding capability, or the error to send.
func Require(ctx context.Context, capability string) (*Principal, error) {
	p := From(ctx)
	if p == nil || p.AccountID == "" {
		return nil, refused(ctx, "this call needs a session token or an account key")
	}
	if !p.Can(capability) {
		return nil, apierr.New(apierr.InsufficientCapability, "this key lacks the %q capability", capability)
	}
	return p, nil
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
