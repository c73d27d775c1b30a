package api

import "github.com/latchkey/latchkey/pkg/apierr"

// The errors a keys client can see, besides validation messages made where they happen.
var (
	errKeyMintsAccount = apierr.New(apierr.PermissionDenied, "an account key cannot create, rotate or widen account keys; use a session")
	errStepUp          = apierr.New(apierr.StepUpRequired, "re-verify your password (POST /v1/account/verify-password) within the last 5 minutes first")
	errNotActive       = apierr.New(apierr.Conflict, "only an active key can be rotated")
	errSuspended       = apierr.New(apierr.AccountSuspended, "this account is suspended: no key can be minted for it")
	errNotUsable       = apierr.New(apierr.Conflict, "this key can no longer be used (revoked or expired) and stays so: its expires_at and capabilities cannot change; create or rotate a key instead")
	errBadPageToken    = apierr.New(apierr.InvalidArgument, "page_token is not one this service issued for this listing (same filters, same account)")
	errNoServers       = apierr.New(apierr.NotFound, "this deployment's key profile has no servers type (a type with \"servers\": true), so there are no servers or collector keys")
	errImported        = apierr.New(apierr.AlreadyExists, "this key is already stored (imported or minted before); it is never stored twice")
)
