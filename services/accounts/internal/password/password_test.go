package password_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/services/accounts/internal/password"
)

func TestHashVerifyRoundTrip(t *testing.T) {
	h, err := password.Hash("correct horse battery staple")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$"), h)

	ok, err := password.Verify("correct horse battery staple", h)
	require.NoError(t, err)
	require.True(t, ok)

	ok, err = password.Verify("correct horse battery stapLe", h)
	require.NoError(t, err)
	require.False(t, ok)

	ok, err = password.Verify("", h)
	require.NoError(t, err)
	require.False(t, ok)
}

func TestHashesAreSalted(t *testing.T) {
	a, err := password.Hash("Tr0ub4dor&3-long")
	require.NoError(t, err)
	b, err := password.Hash("Tr0ub4dor&3-long")
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestVerifyRejectsMalformedHashes(t *testing.T) {
	for _, h := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!!$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5$extra",
	} {
		ok, err := password.Verify("whatever-password-1", h)
		require.ErrorIs(t, err, password.ErrMalformedHash, h)
		require.False(t, ok)
	}
}

func TestCheck(t *testing.T) {
	good := []string{
		"correct horse battery staple", // lower + spaces
		"abcdefghijk1",                 // exactly 12, two kinds
		"ÄÖÜäöüßÉÈÊëï",                 // upper and lower outside ASCII
		strings.Repeat("aB", 128),      // exactly 256
	}
	for _, pw := range good {
		require.NoError(t, password.Check(pw), pw)
	}
	weak := []string{
		"",
		"short1A!",                      // too short
		"abcdefghijk",                   // 11
		"abcdefghijkl",                  // one kind: lower
		"ABCDEFGHIJKLMNOP",              // one kind: upper
		"123456789012345",               // one kind: digits
		"!!!!!!!!!!!!!!",                // one kind: symbols
		strings.Repeat("aB", 128) + "c", // 257
		"abcdefghijk\xff1",              // not UTF-8
	}
	for _, pw := range weak {
		err := password.Check(pw)
		require.Error(t, err, pw)
		require.Equal(t, password.Rule, err.Error())
		require.Contains(t, err.Error(), "12 to 256 characters")
	}
}

func FuzzVerify(f *testing.F) {
	h, err := password.Hash("seed-password-1")
	require.NoError(f, err)
	f.Add("seed-password-1", h)
	f.Add("x", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5")
	f.Fuzz(func(t *testing.T, pw, encoded string) {
		// Must never panic, whatever is stored.
		_, _ = password.Verify(pw, encoded)
	})
}
