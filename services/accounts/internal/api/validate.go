package api

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/latchkey/latchkey/services/accounts/internal/password"
)

// maxEmailLen is RFC 5321's limit on a forward path.
const maxEmailLen = 254

// maxNameLen bounds account and project names, in characters after trimming.
const maxNameLen = 100

// parseEmail accepts a bare address exactly as net/mail reads it (no display name, no
// comments, no surrounding spaces) and returns it lower-cased.
func parseEmail(s string) (string, error) {
	if s == "" {
		return "", invalid("email is required")
	}
	if len(s) > maxEmailLen {
		return "", invalid("email must be at most %d characters", maxEmailLen)
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s || !strings.Contains(s, "@") {
		return "", invalid("email is not a valid address (expected something like name@example.com)")
	}
	return strings.ToLower(s), nil
}

// parseName trims a display name and checks it is 1 to 100 printable characters.
func parseName(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", invalid("%s is required and must not be blank", field)
	}
	if utf8.RuneCountInString(s) > maxNameLen {
		return "", invalid("%s must be at most %d characters", field, maxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return "", invalid("%s must not contain control characters", field)
		}
	}
	return s, nil
}

// presentedPassword checks a password given to log in or to step up: it is not held to the
// strength rule (that is for new passwords), only bounded, so no one can make us hash a
// megabyte.
func presentedPassword(s string) error {
	if s == "" {
		return invalid("password is required")
	}
	if utf8.RuneCountInString(s) > password.MaxLength {
		return invalid("password must be at most %d characters", password.MaxLength)
	}
	return nil
}

// clip shortens client input echoed in a message.
func clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
