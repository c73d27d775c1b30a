package api

import "github.com/latchkey/latchkey/pkg/apierr"

// The errors an audit client can see, besides validation messages made where they happen.
var (
	errOperatorNoAccount = apierr.New(apierr.InvalidArgument,
		"the operator token is bound to no account: name one in account_id (\"_\" for events with no account)")
	errOtherAccount = apierr.New(apierr.PermissionDenied, "account_id names another account; leave it empty to read your own")
	errBadCursor    = apierr.New(apierr.InvalidArgument, "cursor is not one this service issued for this listing (same account, same filters)")
	errBadLimit     = apierr.New(apierr.InvalidArgument, "limit must be between 1 and %d (%d when unset)", maxLimit, defaultLimit)
	errNoEvent      = apierr.New(apierr.InvalidArgument, "event is required")
)

// invalid is a client error in the request itself.
func invalid(format string, args ...any) *apierr.Error {
	return apierr.New(apierr.InvalidArgument, format, args...)
}
