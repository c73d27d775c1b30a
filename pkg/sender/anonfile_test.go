package sender

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gitAdds lists what `git add -A` would add in repo, which is a fresh repository.
func gitAdds(t *testing.T, repo string) []string {
	t.Helper()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "git %v: %s", args, out)
		return string(out)
	}
	if _, err := os.Stat(filepath.Join(repo, ".git")); err != nil {
		git("init", "-q")
	}
	var added []string
	for line := range strings.SplitSeq(git("add", "-A", "--dry-run"), "\n") {
		if f, ok := strings.CutPrefix(line, "add '"); ok {
			added = append(added, strings.TrimSuffix(f, "'"))
		}
	}
	return added
}

// A key directory that exists already (the project's own .glasstrace/, 0755) keeps its
// mode and its other files; the key lands there 0600 and its .gitignore gains lines that
// name exactly the key file (and its temporary files), unless it ignores them already, so
// that the key is never committed while the directory's other files still are.
func TestExistingKeyDirIgnoresTheKeyOnly(t *testing.T) {
	clearEnv(t)
	typed := mustProfile(t, "typed")
	mint, gw := newMintServer(t, typed), newGateway(t)
	added := "# Latchkey sender: the anonymous key is a secret; never commit it.\n/anon_key\n/.anon_key.*.tmp\n"
	for name, tc := range map[string]struct {
		before *string // the directory's .gitignore; nil: none
		want   string
	}{
		"no .gitignore":        {nil, added},
		"a .gitignore":         {ptr("build/\n*.log"), "build/\n*.log\n" + added},
		"the key is ignored":   {ptr("anon_key\n"), "anon_key\n# Latchkey sender: the anonymous key is a secret; never commit it.\n/.anon_key.*.tmp\n"},
		"everything ignored":   {ptr("*\n"), "*\n"},
		"a negation unignores": {ptr("*\n!anon_key\n"), "*\n!anon_key\n# Latchkey sender: the anonymous key is a secret; never commit it.\n/anon_key\n"},
	} {
		t.Run(name, func(t *testing.T) {
			project := t.TempDir()
			dir := filepath.Join(project, ".glasstrace")
			require.NoError(t, os.Mkdir(dir, 0o755)) //nolint:gosec // the project's own directory, as a user makes it
			require.NoError(t, os.Chmod(dir, 0o755)) //nolint:gosec // whatever the umask
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}\n"), 0o600))
			if tc.before != nil {
				require.NoError(t, os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(*tc.before), 0o600))
			}
			s := start(t, Options{Profile: "typed", Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
			require.Equal(t, SourceMinted, s.Key().Source)

			fi, err := os.Stat(filepath.Join(dir, "anon_key"))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			di, err := os.Stat(dir)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o755), di.Mode().Perm(), "an existing directory keeps its mode")
			require.Equal(t, tc.want, readFile(t, filepath.Join(dir, ".gitignore")))
			adds := gitAdds(t, project)
			require.NotContains(t, adds, ".glasstrace/anon_key", "the key would be committed")
			if tc.before == nil || !strings.HasPrefix(*tc.before, "*") {
				require.Contains(t, adds, ".glasstrace/config.json", "the directory's other files stay visible to git")
			}

			// A second mint into the directory adds nothing more.
			require.NoError(t, os.Remove(filepath.Join(dir, "anon_key")))
			start(t, Options{Profile: "typed", Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
			require.Equal(t, tc.want, readFile(t, filepath.Join(dir, ".gitignore")))
		})
	}
}

// A directory the SDK makes is 0700, and its .gitignore of "*" keeps all of it out of git.
func TestCreatedKeyDirIsIgnored(t *testing.T) {
	clearEnv(t)
	mint, gw := newMintServer(t, mustProfile(t, "typed")), newGateway(t)
	project := t.TempDir()
	start(t, Options{Profile: "typed", Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
	di, err := os.Stat(filepath.Join(project, ".glasstrace"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), di.Mode().Perm())
	require.Equal(t, gitignore, readFile(t, filepath.Join(project, ".glasstrace", ".gitignore")))
	require.Empty(t, gitAdds(t, project))
}

// ignores follows git's rules for a file directly in the directory of the .gitignore.
func TestIgnores(t *testing.T) {
	for _, tc := range []struct {
		rules string
		name  string
		want  bool
	}{
		{"", "anon_key", false},
		{"anon_key", "anon_key", true},
		{"/anon_key", "anon_key", true},
		{"**/anon_key", "anon_key", true},
		{"anon_*\n", "anon_key", true},
		{"anon_key/", "anon_key", false},
		{"sub/anon_key", "anon_key", false},
		{"# anon_key", "anon_key", false},
		{"*\n!anon_key", "anon_key", false},
		{"!anon_key\n*", "anon_key", true},
		{"  \n*.tmp  \r\n", ".anon_key.x.tmp", true},
		{"[", "anon_key", false},
	} {
		require.Equal(t, tc.want, ignores(tc.rules, tc.name), "%q ignores %s", tc.rules, tc.name)
	}
}

func ptr[T any](v T) *T { return &v }

// A failed mint leaves nothing in the project directory: no key directory, no lock.
func TestFailedMintLeavesNothing(t *testing.T) {
	clearEnv(t)
	mint, gw := newMintServer(t, mustProfile(t, "typed")), newGateway(t)
	mint.answerWith(func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) })
	for _, profile := range []string{"", "default", "typed"} {
		project := t.TempDir()
		_, err := Start(context.Background(), Options{Profile: profile, Dir: project, APIURL: mint.URL, Endpoint: gw.URL, Logger: discard()})
		require.Error(t, err)
		entries, err := os.ReadDir(project)
		require.NoError(t, err)
		require.Empty(t, entries, "profile %q", profile)
	}
}
