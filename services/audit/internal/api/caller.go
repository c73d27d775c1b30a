package api

import (
	"context"

	"github.com/latchkey/latchkey/pkg/auth"
)

// reader returns the account a read of the log is about: the caller's own (a user of the
// account, or an account key with audit:read), or for the operator, who is bound to no
// account, the one it names ("_" for events with no account).
func reader(ctx context.Context, requested string) (string, error) {
	if p := auth.From(ctx); p != nil && p.Kind == auth.KindOperator {
		switch requested {
		case "":
			return "", errOperatorNoAccount
		case "_":
			return "", nil
		}
		return requested, nil
	}
	p, err := auth.Require(ctx, ReadCapability)
	if err != nil {
		return "", err
	}
	if requested != "" && requested != p.AccountID {
		return "", errOtherAccount
	}
	return p.AccountID, nil
}
