package allinone

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
)

// quickstart returns the shell block under "## Quickstart" in the README.
func quickstart(t *testing.T) string {
	t.Helper()
	return readmeShell(t, "\n## Quickstart\n")
}

// readmeShell is the first sh block of the README after heading.
func readmeShell(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), heading)
	require.True(t, ok, "README has the section %q", heading)
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

// TestReadmeAnonymousFirst runs the README's anonymous-first walk-through, verbatim: the
// data sent before sign-up is linked by the claim, the anonymous key's next answer
// carries the claim notice, and the new key sends.
func TestReadmeAnonymousFirst(t *testing.T) {
	s := startSuite(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeShell(t, "\n### Anonymous first: send, sign up, claim\n"))
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Equal(t, 2, strings.Count(text, `{"accepted":1}`), "before the claim and with the new key:\n%s", text)
	require.Contains(t, text, `"messages_linked":1`)
	require.Contains(t, text, `"new_key":"lk_ing_`)
	require.Regexp(t, `(?i)latchkey-key-notice: claimed; grace_until=\d{4}-\d\d-\d\dT`, text)
	require.NotContains(t, text, "null", text)
}

// TestReadmeSenderExample: the README's Go SDK program is pkg/sender/example verbatim, and
// it runs against the suite with no setting at all, under the default and the typed
// profile: the first run mints an anonymous key into the profile's file, the second reuses
// it, and both runs' traces land on the key's subject. The profile's key variable is
// enough for a regular key; a revoked key is reported as not sent (exit status 1), and a
// session key is refused, leaving nothing behind.
func TestReadmeSenderExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n## Sending telemetry with the Go SDK\n")
	require.True(t, ok, "README has the Go SDK section")
	section, _, _ = strings.Cut(section, "\n## ")
	program, err := os.ReadFile("../../pkg/sender/example/main.go")
	require.NoError(t, err)
	require.Contains(t, section, "```go\n"+string(program)+"```\n", "the README shows pkg/sender/example/main.go verbatim")

	bin := filepath.Join(t.TempDir(), "example")
	build := exec.Command("go", "build", "-o", bin, "./pkg/sender/example")
	build.Dir = "../.."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, tc := range []struct{ profile, dir, env, anon string }{
		{"default", ".latchkey", "LATCHKEY_API_KEY", "lk_anon_"},
		{"typed", ".glasstrace", "GLASSTRACE_API_KEY", "gt_anon_"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
				k.KeyProfile = tc.profile
			}))
			project, cache := t.TempDir(), t.TempDir()
			run := func(env ...string) (string, error) {
				cmd := exec.Command(bin) //nolint:gosec // built above
				cmd.Dir = project
				cmd.Env = append(os.Environ(), "LATCHKEY_API_URL="+s.api, "OTEL_EXPORTER_OTLP_ENDPOINT="+s.ingest, "OTEL_EXPORTER_OTLP_PROTOCOL=", "LATCHKEY_KEY_PROFILE=", "XDG_CACHE_HOME="+cache)
				for _, v := range keyVariables(t) {
					cmd.Env = append(cmd.Env, v+"=")
				}
				cmd.Env = append(cmd.Env, env...)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			mustRun := func(env ...string) string {
				out, err := run(env...)
				require.NoError(t, err, "%s", out)
				return out
			}
			first := mustRun()
			require.Contains(t, first, "sent with the anonymous key "+tc.anon)
			require.Contains(t, first, "(from minted, profile "+tc.profile+")")
			require.Contains(t, mustRun(), "(from file, profile "+tc.profile+")")
			secret, err := os.ReadFile(filepath.Join(project, tc.dir, "anon_key")) //nolint:gosec // the test's own directory
			require.NoError(t, err)
			id := s.keyID(t, strings.TrimSpace(string(secret)))
			require.Len(t, s.storedIn(natsx.AnonIngestStream(s.ns), s.ns+".anon."+id+".traces"), 2, "one trace export per run")
			require.Equal(t, []string{tc.dir}, dirNames(t, project), "only the profile's key directory")

			// A regular key in the profile's variable, from a directory of its own.
			token, _ := s.signUp("example-" + tc.profile)
			keyID, key := s.IngestKey(token, s.Project(token))
			project = t.TempDir()
			require.Contains(t, mustRun(tc.env+"="+key), "(from env, profile "+tc.profile+")")
			s.Must(http.StatusOK, s.Call("POST", "/v1/keys/"+keyID+":revoke", token, map[string]any{"wait_for_gateways": true}))
			out, err := run(tc.env + "=" + key)
			require.Error(t, err, "a refused key exits 1: %s", out)
			require.Contains(t, out, "not sent with the ingest key")
			require.Contains(t, out, "401")
			require.NotContains(t, out, "\nsent with")
			require.NotContains(t, out, key)

			// A browser session key is refused at start.
			reg, err := keyformat.LoadProfile(tc.profile)
			require.NoError(t, err)
			sess, ok := reg.Session()
			require.True(t, ok)
			sessionKey, err := reg.Generate(sess.Name)
			require.NoError(t, err)
			out, err = run(tc.env + "=" + sessionKey)
			require.Error(t, err, out)
			require.Contains(t, out, "browser session key")
			require.NotContains(t, out, "sent with")
			require.Empty(t, dirNames(t, project), "a failed start leaves nothing")
		})
	}
}

// keyVariables are the key variables of every built-in profile.
func keyVariables(t *testing.T) []string {
	t.Helper()
	var vars []string
	for _, name := range keyformat.ProfileNames() {
		reg, err := keyformat.LoadProfile(name)
		require.NoError(t, err)
		vars = append(vars, reg.SDK().APIKeyEnv)
	}
	return vars
}

// dirNames lists the names in dir.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := []string{}
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestReadmeSenderImport runs the README's lines for using the SDK from a module of one's
// own, in a module outside the workspace, and builds a program that imports the SDK.
func TestReadmeSenderImport(t *testing.T) {
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	mod := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(mod, "main.go"), []byte(`package main

import (
	"context"
	"log"

	"github.com/latchkey/latchkey/pkg/sender"
)

func main() {
	s, err := sender.Start(context.Background(), sender.Options{ServiceName: "app"})
	if err != nil {
		log.Fatal(err)
	}
	_ = s.Shutdown(context.Background())
}
`), 0o600))
	block := readmeShell(t, "\n## Sending telemetry with the Go SDK\n")
	require.Contains(t, block, "L=/path/to/latchkey")
	block = strings.Replace(block, "L=/path/to/latchkey", "L="+repo, 1)
	script := "go mod init example.com/app\n" + block + "go build -o app .\n"
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = os.Stat(filepath.Join(mod, "app"))
	require.NoError(t, err)
}

// TestReadmeFleet runs the README's fleet walk-through, verbatim, under the default
// profile: a server and its lk_srv_ key, data sent with it, the key refused as a
// management credential, the listing, the rotation, and the deleted server's key refused.
func TestReadmeFleet(t *testing.T) {
	s := startSuite(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeShell(t, "\n### A fleet: servers and their collector keys\n"))
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Contains(t, text, `"key":"lk_srv_"`)
	require.Contains(t, text, `"tags":["fra","web"]`)
	require.Contains(t, text, `{"accepted":1}`)
	require.Contains(t, text, `{"error":"permission_denied"}`)
	require.Contains(t, text, `["web-1"]`)
	require.Contains(t, text, `"previous":"grace"`)
	require.Contains(t, text, `{"deleted":true}`)
	require.Contains(t, text, "the old key now gets 401")
	require.NotContains(t, text, "null", text)
}

// TestReadmeLegacyImport runs the README's legacy import, verbatim, under the gmk
// profile: a col_ key adopted for a server sends.
func TestReadmeLegacyImport(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = "gmk" }))
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(readme), "\n### A fleet: servers and their collector keys\n")
	require.True(t, ok)
	_, section, ok = strings.Cut(section, "`TestReadmeLegacyImport` runs this block so")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Contains(t, text, `"display_prefix":"col_db-3_`)
	require.Contains(t, text, `"type":"ingest","server_id":"srv_`)
	require.Contains(t, text, `{"accepted":1}`)
	require.NotContains(t, text, "null", text)
}

// TestReadmeCommandLine runs the README's command-line walk-through, verbatim, with the
// built latchkey first on PATH and a configuration directory of its own.
func TestReadmeCommandLine(t *testing.T) {
	s := startSuite(t)
	cli := buildCLI(t)
	dir := t.TempDir()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeShell(t, "\n## Command line\n"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "API="+s.api, "PATH="+filepath.Dir(cli.bin)+":"+os.Getenv("PATH"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Contains(t, text, "Logged in to "+s.api)
	require.Contains(t, text, "Its secret, shown this once")
	require.Regexp(t, `(?m)^ID\s+TYPE\s+NAME\s+PREFIX`, text)
	require.Contains(t, text, "valid: key ")
	require.Contains(t, text, "Gateways that dropped it: 1 of 1 live (complete")
	require.Contains(t, text, "not valid: revoked\nverify exited 1\n")
	require.Regexp(t, `(?m)^\S+ \S+\s+keys\.revoke\s+ok\s+usr_`, text)
	require.Contains(t, text, "The audit chain holds")
	require.Regexp(t, `(?m)^app\.env:1:18: ingest lk_ing_\S+… verified\nscan exited 1\n`, text)
	require.Contains(t, text, `{"file":"app.env","line":1,"type":"ingest","display_prefix":"lk_ing_`)
	require.Contains(t, text, "Logged out of "+s.api)
	require.NoFileExists(t, filepath.Join(dir, "config", "latchkey", "session.json"))
}
