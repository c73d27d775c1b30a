package verdict

import "time"

// Status is where a key stands in its lifecycle at an instant (docs/keys.md, "Statuses").
// It is never stored: it follows from the key's three timestamps by one rule,
// Lifetime.Status, which SQL applies as StatusSQL.
type Status string

// The statuses.
const (
	// StatusActive: neither revoked, expired nor rotated.
	StatusActive Status = "active"
	// StatusGrace: rotated, and still working until grace_until.
	StatusGrace Status = "grace"
	// StatusRevoked: revoked_at is set, whatever it says; revocation is immediate.
	StatusRevoked Status = "revoked"
	// StatusExpired: expires_at or grace_until is at or before now.
	StatusExpired Status = "expired"
)

// Statuses lists every status, for validating filters and for tests.
func Statuses() []Status {
	return []Status{StatusActive, StatusGrace, StatusRevoked, StatusExpired}
}

// Code is what the status alone says about using the key: OK for active and grace keys,
// Revoked or Expired otherwise. Decide checks the rest.
func (s Status) Code() Code {
	switch s {
	case StatusRevoked:
		return Revoked
	case StatusExpired:
		return Expired
	default:
		return OK
	}
}

// Lifetime is the part of a key that decides its status: the three timestamps, each the
// zero time when not set. In Postgres they are the nullable timestamptz columns of the
// same names (revoked_at, expires_at, grace_until).
type Lifetime struct {
	// RevokedAt is when the key was revoked.
	RevokedAt time.Time
	// ExpiresAt is when the key stops working, as its owner set it.
	ExpiresAt time.Time
	// GraceUntil is when a rotated key stops working.
	GraceUntil time.Time
}

// Status is the key's status at now. This is THE status rule; StatusSQL is the same rule
// for Postgres, kept beside it and held to it by TestStatusSQLAgreesWithGo. The first case
// that holds decides: a set revoked_at revokes, whatever instant it names; a key is expired
// at the very instant of its expires_at or grace_until, not one tick later; a rotated key
// before its grace_until is in grace; any other key is active.
func (l *Lifetime) Status(now time.Time) Status {
	switch {
	case !l.RevokedAt.IsZero():
		return StatusRevoked
	case !l.ExpiresAt.IsZero() && !l.ExpiresAt.After(now):
		return StatusExpired
	case !l.GraceUntil.IsZero() && !l.GraceUntil.After(now):
		return StatusExpired
	case !l.GraceUntil.IsZero():
		return StatusGrace
	default:
		return StatusActive
	}
}

// StatusSQL is Lifetime.Status as a Postgres expression of type text, case for case, over
// the columns revoked_at, expires_at and grace_until (nullable timestamptz, NULL when not
// set), judged at now: SQL text for the instant, a placeholder such as "$2" bound to the
// same time.Time the Go side judges at (not now(), the transaction's start, which would
// judge a listing and the statuses it shows at different instants). now must be SQL
// written in code, never input.
//
// Postgres keeps microseconds: a timestamp read back from it is on the microsecond grid,
// and on that grid Go and SQL agree for any now, nanoseconds included (pgx truncates a
// bound time.Time to the microsecond, and t <= now holds exactly when t <= trunc(now)).
func StatusSQL(now string) string {
	return `CASE WHEN revoked_at IS NOT NULL THEN '` + string(StatusRevoked) + `'
	WHEN expires_at IS NOT NULL AND expires_at <= ` + now + ` THEN '` + string(StatusExpired) + `'
	WHEN grace_until IS NOT NULL AND grace_until <= ` + now + ` THEN '` + string(StatusExpired) + `'
	WHEN grace_until IS NOT NULL THEN '` + string(StatusGrace) + `'
	ELSE '` + string(StatusActive) + `' END`
}
