package allinone

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// TestCLIUsage runs the built latchkey where no server is needed, or none answers: bad
// usage, secrets pasted where they do not belong, a session that cannot be ended.
func TestCLIUsage(t *testing.T) {
	cli := buildCLI(t)
	reg, err := keyformat.LoadProfile("default")
	require.NoError(t, err)
	secret, err := reg.Generate("ingest")
	require.NoError(t, err)

	t.Run("a key passed as an argument is never echoed", func(t *testing.T) {
		for _, args := range [][]string{
			{"keys", "verify", secret},
			{"keys", "import", "--type", "ingest", secret},
			{"login", "--email", "a@example.com", secret},
			{"logout", secret},
			{"audit", "verify", secret},
			{"keys", "get", "key_1", secret},
		} {
			out, errs, status := cli.run("", args...)
			require.Equal(t, 2, status, "%v: %s", args, errs)
			require.Empty(t, out)
			require.NotContains(t, errs, secret[len("lk_ing_"):], args)
			require.Regexp(t, `got \d+`, errs, args)
		}
		// scan names the path it cannot read, redacted.
		_, errs, status := cli.run("", "scan", secret)
		require.Equal(t, 2, status, errs)
		require.NotContains(t, errs, secret[len("lk_ing_"):])
		require.Contains(t, errs, "lk_ing_"+keyformat.Redacted)
	})
}

// writeFile writes a test's file, its directories made.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
}

// TestCLIUsageExit: bad usage exits 2 wherever it is; an API error prints nothing on
// standard output.
func TestCLIUsageExit(t *testing.T) {
	cli := buildCLI(t)
	for _, args := range [][]string{{"nosuchcmd"}, {"keys", "nosuchcmd"}, {"keys", "create", "--bogus"}, {"keys", "get"}} {
		out, errs, status := cli.run("", args...)
		require.Equal(t, 2, status, "%v: %s", args, errs)
		require.Empty(t, out, args)
		require.Contains(t, errs, "Run 'latchkey --help' for usage.", args)
	}
	// No answer from the API: the error on stderr, nothing on stdout (no table header).
	cli.env = []string{"LATCHKEY_API=http://127.0.0.1:1", "LATCHKEY_TOKEN=lks_test"}
	out, errs, status := cli.run("", "audit", "tail")
	require.Equal(t, 1, status, errs)
	require.Empty(t, out)
	require.Contains(t, errs, "cannot reach the API")
}
