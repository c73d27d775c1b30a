package allinone

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// quickstart returns the shell block under "## Quickstart" in the README.
func quickstart(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "## Quickstart")
	require.True(t, ok, "README has a Quickstart section")
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	return block
}

// TestReadmeQuickstart runs the README's quickstart, verbatim, against a fresh suite.
func TestReadmeQuickstart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoErrorf(t, err, "the quickstart needs %s", tool)
	}
	s := startSuite(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", quickstart(t))
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "quickstart failed:\n%s", out)
	text := string(out)
	require.Contains(t, text, `"valid": true`)
	require.Contains(t, text, `"code": "ok"`)
	require.Contains(t, text, `"status": "revoked"`)
	require.Contains(t, text, `"code": "revoked"`)
	require.Contains(t, text, `"accepted": 1`)
	require.Contains(t, text, `"complete": true`)
	require.Contains(t, text, "the gateway now answers 401")
	require.Contains(t, text, " keys.revoke ")
	require.Contains(t, text, " accounts.signup ")
	require.Contains(t, text, `"ok": true`)
	require.NotContains(t, text, "null", "every value the quickstart prints is set:\n%s", text)
}
