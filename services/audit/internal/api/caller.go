package api

import (
	"context"

	"github.com/latchkey/latchkey/pkg/auth"
)

// reader returns the caller of a read of one account's log: a user of the account or an
// account key with audit:read. The operator is refused with a clear message rather than
// a bare 401: its token is valid, it just names no account (ListEventsRequest has no
// account field).
func reader(ctx context.Context) (*auth.Principal, error) {
	if p := auth.From(ctx); p != nil && p.Kind == auth.KindOperator {
		return nil, errOperatorNoAccount
	}
	return auth.Require(ctx, ReadCapability)
}
