package ingest

import (
	"context"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// maxKeyLen bounds a presented key. No key format comes near it (the longest profile is a
// prefix plus 64 hex characters), so anything longer is refused without hashing it.
const maxKeyLen = 512

// presentedKey picks the key out of the Authorization and x-api-key values: a Bearer token
// (scheme case-insensitive) wins; x-api-key is used when there is no Bearer token.
func presentedKey(authorization, apiKey string) (string, *apierr.Error) {
	authorization = strings.TrimSpace(authorization)
	if authorization != "" {
		scheme, rest, _ := strings.Cut(authorization, " ")
		if strings.EqualFold(scheme, "bearer") {
			key := strings.TrimSpace(rest)
			if key == "" {
				return "", apierr.New(apierr.Unauthenticated, "the Authorization header has no key after Bearer")
			}
			return checkKeyLen(key)
		}
		// Another scheme (e.g. Basic for a proxy in front) is not ours; x-api-key may still be.
		if strings.TrimSpace(apiKey) == "" {
			return "", apierr.New(apierr.Unauthenticated, "the Authorization header must be `Bearer <key>`")
		}
	}
	key := strings.TrimSpace(apiKey)
	if key == "" {
		return "", apierr.New(apierr.Unauthenticated, "no API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")
	}
	return checkKeyLen(key)
}

func checkKeyLen(key string) (string, *apierr.Error) {
	if len(key) > maxKeyLen {
		return "", apierr.New(apierr.Unauthenticated, "the API key is malformed")
	}
	return key, nil
}

// clientIP is the host part of a transport address ("1.2.3.4:5678" → "1.2.3.4").
func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// authorize asks the Authorizer. Its errors are *apierr.Error by contract; an internal
// error (or anything else) is a fault on our side, which a client should retry rather than
// see as a 500.
func authorize(ctx context.Context, auth grant.Authorizer, req grant.Request, log *zap.Logger) (grant.Grant, *apierr.Error) {
	g, err := auth.Authorize(ctx, req)
	if err == nil {
		return g, nil
	}
	e := apierr.FromError(err)
	if e.Code == apierr.Internal {
		log.Error("authorizer failed", zap.Error(err))
		return grant.Grant{}, &apierr.Error{Code: apierr.Unavailable, Message: "key verification is unavailable; retry later", RetryAfter: time.Second}
	}
	return grant.Grant{}, e
}
