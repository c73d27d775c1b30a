package auth

import (
	"context"
	"crypto/subtle"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

// The bounds of every presented credential, whatever its kind and wherever it is presented
// (the management API and the ingest gateway alike): 1 to MaxTokenLen bytes, each printable
// ASCII other than space (0x21 to 0x7E). No key profile comes near the length (the longest
// is a prefix and 64 hex characters), session tokens are 47 characters, and the operator
// token is held to the same bounds when it is configured (CheckOperatorToken), so every
// credential Latchkey issues or accepts fits. Anything else is refused before any lookup.
const (
	MaxTokenLen = 512
	// MinOperatorTokenLen is the shortest operator token a service starts with.
	MinOperatorTokenLen = 16
)

// SessionTokenPrefix starts every session token, so services tell them from API keys
// without a lookup. No key type may use it. Its shape is declared in keyformat, so that
// keyformat.Redact hides session tokens as it hides keys.
const SessionTokenPrefix = keyformat.SessionTokenPrefix

// The errors a caller sees when its credential is refused; every service answers with these
// values, so the same credential gets the same code and message from each. None of them
// echoes the credential.
var (
	// ErrMalformed: a credential outside the bounds (too long, or a byte outside the
	// alphabet).
	ErrMalformed = apierr.New(apierr.Unauthenticated,
		"the credential is malformed: a token is 1 to %d printable ASCII characters, without spaces", MaxTokenLen)
	// ErrNoAPIKey: the ingest gateway got neither a Bearer token nor x-api-key.
	ErrNoAPIKey = apierr.New(apierr.Unauthenticated, "no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")
	// ErrEmptyBearer: `Authorization: Bearer` with nothing after it.
	ErrEmptyBearer = apierr.New(apierr.Unauthenticated, "the Authorization header has no key after Bearer")
	// ErrNotBearer: an Authorization header of another scheme, and no x-api-key.
	ErrNotBearer = apierr.New(apierr.Unauthenticated, "the Authorization header must be `Bearer <key>`")
	// ErrBadToken: no session, account key or operator token goes by this token (unknown,
	// revoked or expired keys included).
	ErrBadToken = apierr.New(apierr.Unauthenticated,
		"the bearer token is not a valid session token, account key or operator token")
	// ErrBadSession: a session token that is unknown, expired or revoked.
	ErrBadSession = apierr.New(apierr.Unauthenticated, "the session token is unknown, expired or revoked")
	// ErrProjectKey: a live key bound to a project, presented to the management API.
	ErrProjectKey = apierr.New(apierr.Unauthenticated,
		"a key bound to a project cannot call the management API; use an account key or a session")
	// ErrCollectorKey: a live collector key (bound to a server, POST /v1/servers),
	// presented to the management API. It is a valid credential that may do one thing
	// only, ingest its server's data, so it is refused as forbidden (403), never asked to
	// authenticate again (DESIGN "Seed schemes", servers and collector keys).
	ErrCollectorKey = apierr.New(apierr.PermissionDenied,
		"a collector key only sends its server's data to the ingest gateway; it cannot call the management API: use a session or an account key with servers:manage")
	// ErrBrowserKey: a live browser-only key (a session key), presented to the management
	// API: it only sends data, from a page of an origin its project allows.
	ErrBrowserKey = apierr.New(apierr.Unauthenticated,
		"a browser session key only sends data, from a page of an origin its project allows; it cannot call the management API")
	// ErrSuspended: a live session or account key of a suspended account.
	ErrSuspended = apierr.New(apierr.AccountSuspended, "this account is suspended")
	// ErrUnavailable: the service that resolves this kind of credential did not answer
	// (or failed); the credential may well be good, so this is 503, never 401.
	ErrUnavailable = &apierr.Error{
		Code:    apierr.Unavailable,
		Message: "credentials cannot be checked right now; retry shortly", RetryAfter: time.Second,
	}
)

// CheckToken returns ErrMalformed when tok is outside the bounds, and nil when it is within.
func CheckToken(tok string) *apierr.Error {
	if tok == "" || len(tok) > MaxTokenLen {
		return ErrMalformed
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < '!' || c > '~' {
			return ErrMalformed
		}
	}
	return nil
}

// CheckOperatorToken says why a configured operator token (LATCHKEY_OPERATOR_TOKEN) cannot
// be used: MinOperatorTokenLen to MaxTokenLen printable ASCII characters without spaces, so
// it can be presented as a bearer token like any other.
func CheckOperatorToken(tok string) error {
	if len(tok) < MinOperatorTokenLen || CheckToken(tok) != nil {
		return fmt.Errorf("LATCHKEY_OPERATOR_TOKEN is required and must be %d to %d printable ASCII characters without spaces",
			MinOperatorTokenLen, MaxTokenLen)
	}
	return nil
}

// bearer reads an Authorization value: ok when its scheme is Bearer (in any case), with the
// token after it trimmed of spaces ("" when there is none).
func bearer(authorization string) (token string, ok bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(authorization), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

// BearerToken reads `authorization: Bearer <token>` from incoming gRPC metadata (where the
// REST bridge puts the HTTP header too); "" when there is none. Its bounds are checked by
// Authenticator.Authenticate, which turns it into a principal.
func BearerToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if tok, ok := bearer(v); ok && tok != "" {
			return tok
		}
	}
	return ""
}

// PresentedKey picks the API key out of an ingest request's Authorization and x-api-key
// values and checks its bounds: a Bearer token (scheme in any case) wins; x-api-key is used
// when there is no Authorization header, or one of another scheme (e.g. Basic, for a proxy
// in front). It allocates nothing.
func PresentedKey(authorization, apiKey string) (string, *apierr.Error) {
	key := strings.TrimSpace(apiKey)
	if strings.TrimSpace(authorization) != "" {
		tok, ok := bearer(authorization)
		switch {
		case ok && tok == "":
			return "", ErrEmptyBearer
		case ok:
			key = tok
		case key == "":
			return "", ErrNotBearer
		}
	}
	if key == "" {
		return "", ErrNoAPIKey
	}
	if err := CheckToken(key); err != nil {
		return "", err
	}
	return key, nil
}

// OutgoingBearer makes token the one bearer of an outgoing gRPC call. An authorization
// already in ctx's outgoing metadata (the REST bridge's context carries its caller's) is
// replaced, never sent beside it: the callee reads the first, and would authenticate (and
// rate-limit) the caller instead of this service.
func OutgoingBearer(ctx context.Context, token string) context.Context {
	return setOutgoing(ctx, "authorization", "Bearer "+token)
}

// setOutgoing returns ctx with key set to value alone in its outgoing metadata; the other
// keys are kept.
func setOutgoing(ctx context.Context, key, value string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(key, value)
	return metadata.NewOutgoingContext(ctx, md)
}

// OperatorToken compares a presented token with the configured one in constant time.
type OperatorToken string

// Matches reports whether presented is the operator token; an unset token matches nothing.
func (t OperatorToken) Matches(presented string) bool {
	if t == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(t), []byte(presented)) == 1
}
