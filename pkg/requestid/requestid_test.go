package requestid

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
)

func TestNewIsAValidRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		require.True(t, ids.Valid(ids.Request, id), "%q", id)
		require.Equal(t, strings.ToLower(id), id)
		require.False(t, seen[id], "duplicate %q", id)
		seen[id] = true
	}
}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		supplied bool
	}{
		{"abc-123_x.y:z", true},
		{strings.Repeat("a", 128), true},
		{"", false},
		{strings.Repeat("a", 129), false},
		{"has space", false},
		{"new\nline", false},
		{"ünïcode", false},
		// A key pasted as the id: echoed, logged and stored with every event if taken.
		{pastedKey(t), false},
		{"retry-1:" + pastedKey(t), false},
		// So is a session token.
		{keyformat.SessionTokenPrefix + strings.Repeat("Ab9", keyformat.SessionTokenBodyLen/3) + "Z", false},
	} {
		id, supplied := Resolve(tc.raw)
		require.Equal(t, tc.supplied, supplied, "%q", tc.raw)
		if tc.supplied {
			require.Equal(t, tc.raw, id)
		} else {
			require.True(t, ids.Valid(ids.Request, id), "%q got %q", tc.raw, id)
		}
	}
}

// pastedKey is a well-formed ingest key of the default profile.
func pastedKey(t *testing.T) string {
	t.Helper()
	plain, err := keyformat.Default().Generate("ingest")
	require.NoError(t, err)
	return plain
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	require.Empty(t, From(ctx))
	require.False(t, Supplied(ctx))
	ctx = With(ctx, "mine", true)
	require.Equal(t, "mine", From(ctx))
	require.True(t, Supplied(ctx))
	require.False(t, Supplied(With(ctx, "req_x", false)))
}
