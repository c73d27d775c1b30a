package api

import (
	"errors"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// The errors a client of the accounts service can see, besides the invalid_argument ones
// made by validation (invalid). Messages never say more than the caller may know: a wrong
// email and a wrong password read the same.
var (
	errBadCredentials   = apierr.New(apierr.Unauthenticated, "the email or password is wrong")
	errSessionInvalid   = auth.ErrBadSession
	errAccountSuspended = auth.ErrSuspended
	errWrongPassword    = apierr.New(apierr.Unauthenticated, "the password is wrong; the session is unchanged")
	errEmailTaken       = apierr.New(apierr.AlreadyExists, "an account with this email already exists")
	errAccountNotFound  = apierr.New(apierr.NotFound, "no such account")
	errProjectNotFound  = apierr.New(apierr.NotFound, "no such project")
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
