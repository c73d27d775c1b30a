package token_test

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/accounts/internal/token"
)

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		tok, err := token.New()
		require.NoError(t, err)
		require.Len(t, tok, 47)
		require.Regexp(t, `^lks_[0-9A-Za-z]{43}$`, tok)
		require.True(t, token.WellFormed(tok))
		require.False(t, seen[tok])
		seen[tok] = true
	}
}

func TestWellFormed(t *testing.T) {
	for _, s := range []string{
		"",
		"lks_",
		"lks_abc",
		"lk_ing_0123456789012345678901234567890123456789012",
		"lks_000000000000000000000000000000000000000000-",
		"LKS_0000000000000000000000000000000000000000000",
		"lks_00000000000000000000000000000000000000000000",
	} {
		require.False(t, token.WellFormed(s), s)
	}
	require.True(t, token.WellFormed("lks_0000000000000000000000000000000000000000000"))
}

func TestHash(t *testing.T) {
	sum := sha256.Sum256([]byte("lks_x"))
	require.Equal(t, sum[:], token.Hash("lks_x"))
}

// Every session token New makes is one keyformat.Redact hides (pasted into an id, an error
// message or X-Request-Id, it is neither kept nor echoed).
func TestNewIsRedacted(t *testing.T) {
	for range 50 {
		tok, err := token.New()
		require.NoError(t, err)
		require.Equal(t, token.Prefix+keyformat.Redacted, keyformat.Redact(tok))
	}
}
