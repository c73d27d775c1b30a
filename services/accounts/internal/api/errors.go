package api

import (
	"errors"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// The errors a client of the accounts service can see, besides the invalid_argument ones
// made by validation (invalid). Messages never say more than the caller may know: a wrong
// email and a wrong password read the same.
var (
	errBadCredentials   = apierr.New(apierr.Unauthenticated, "the email or password is wrong")
	errSessionInvalid   = apierr.New(apierr.Unauthenticated, "the session token is unknown, expired or revoked")
	errBadToken         = apierr.New(apierr.Unauthenticated, "the bearer token is not a valid session token, account key or operator token")
	errProjectKey       = apierr.New(apierr.Unauthenticated, "a key bound to a project cannot call the management API; use an account key or a session")
	errAccountSuspended = apierr.New(apierr.AccountSuspended, "this account is suspended")
	errWrongPassword    = apierr.New(apierr.Unauthenticated, "the password is wrong; the session is unchanged")
	errEmailTaken       = apierr.New(apierr.AlreadyExists, "an account with this email already exists")
	errAccountNotFound  = apierr.New(apierr.NotFound, "no such account")
	errProjectNotFound  = apierr.New(apierr.NotFound, "no such project")
	errKeysUnavailable  = apierr.New(apierr.Unavailable, "API keys cannot be verified right now; retry shortly")
)

// invalid is a client error in the request itself.
func invalid(format string, args ...any) *apierr.Error {
	return apierr.New(apierr.InvalidArgument, format, args...)
}

// storeErr maps the store's sentinels to client errors; notFound is what a missing row
// means to this caller. Other errors pass through (the server logs them as internal).
func storeErr(err error, notFound *apierr.Error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound) && notFound != nil:
		return notFound
	case errors.Is(err, store.ErrEmailTaken):
		return errEmailTaken
	}
	return err
}
