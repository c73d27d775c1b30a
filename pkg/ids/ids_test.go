package ids_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/ids"
)

func TestValid(t *testing.T) {
	id := ids.New(ids.Project)
	require.True(t, ids.Valid(ids.Project, id))
	body := id[len(ids.Project):]
	for name, s := range map[string]string{
		"upper case":   ids.Project + strings.ToUpper(body),
		"one upper":    oneUpper(id),
		"other prefix": ids.Key + body,
		"short":        id[:len(id)-1],
		"long":         id + "0",
		"not base32":   id[:len(id)-1] + "u",
		"empty":        "",
		"prefix only":  ids.Project,
	} {
		require.False(t, ids.Valid(ids.Project, s), name)
	}
}

// TestCheck: one answer for every service, never quoting what was sent.
func TestCheck(t *testing.T) {
	require.NoError(t, ids.Check("id", ids.Key, ids.New(ids.Key)))
	for _, s := range []string{"", "lk_ing_secretsecretsecret", ids.New(ids.Project)} {
		err := ids.Check("id", ids.Key, s)
		e := apierr.FromError(err)
		require.Equal(t, apierr.InvalidArgument, e.Code)
		require.True(t, strings.HasPrefix(e.Message, "id is "), e.Message)
		if s != "" {
			require.NotContains(t, e.Message, s)
			require.Contains(t, e.Message, ids.Key)
		}
	}
}

// oneUpper is id with its first letter after the prefix in upper case (the time part of
// today's ULIDs has letters: "01m…").
func oneUpper(id string) string {
	i := len(ids.Project) + strings.IndexFunc(id[len(ids.Project):], func(r rune) bool { return r >= 'a' && r <= 'z' })
	return id[:i] + strings.ToUpper(id[i:i+1]) + id[i+1:]
}
