package ingest

import (
	"context"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// presentedKey picks the key out of the Authorization and x-api-key values, with the bounds
// and errors every service shares (auth.PresentedKey).
func presentedKey(authorization, apiKey string) (string, *apierr.Error) {
	return auth.PresentedKey(authorization, apiKey)
}

// clientIP is the host part of a transport address ("1.2.3.4:5678" → "1.2.3.4").
func clientIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// authorize asks the Authorizer; with an error the grant holds only its notice. Its errors
// are *apierr.Error by contract; an internal
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
	return grant.Grant{Notice: g.Notice}, e
}
