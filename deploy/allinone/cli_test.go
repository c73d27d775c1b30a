package allinone

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// latchkeyCLI is the built `latchkey` binary, run as a user would, with a home of its own
// (so its session file is the test's) and no LATCHKEY_ variable of the test's environment.
type latchkeyCLI struct {
	t      *testing.T
	bin    string
	config string
	// env is added to each run's environment.
	env []string
}

// buildCLI builds deploy/allinone/cmd/latchkey into a temporary directory.
func buildCLI(t *testing.T) *latchkeyCLI {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "latchkey")
	build := exec.Command("go", "build", "-o", bin, "./deploy/allinone/cmd/latchkey")
	build.Dir = "../.."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return &latchkeyCLI{t: t, bin: bin, config: filepath.Join(dir, "config")}
}

func (c *latchkeyCLI) cmd(stdin string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.bin, args...) //nolint:gosec // the binary built above
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "XDG_CONFIG_HOME="+c.config)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs latchkey args with stdin and returns its outputs and exit status.
func (c *latchkeyCLI) run(stdin string, args ...string) (stdout, stderr string, status int) {
	c.t.Helper()
	cmd := c.cmd(stdin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil {
		require.ErrorAs(c.t, err, &exit, "latchkey %v", args)
		return o.String(), e.String(), exit.ExitCode()
	}
	return o.String(), e.String(), 0
}

// ok runs latchkey args, requires exit status 0, and returns its standard output.
func (c *latchkeyCLI) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, errs, status := c.run(stdin, args...)
	require.Equal(c.t, 0, status, "latchkey %v:\n%s%s", args, out, errs)
	return out
}

// json runs latchkey args --json and decodes its standard output.
func (c *latchkeyCLI) json(stdin string, args ...string) map[string]any {
	c.t.Helper()
	out := c.ok(stdin, append(args, "--json")...)
	var v map[string]any
	require.NoError(c.t, json.Unmarshal([]byte(out), &v), "latchkey %v --json printed:\n%s", args, out)
	return v
}

// str is the string at a dotted path of a decoded answer.
func str(t *testing.T, v map[string]any, path string) string {
	t.Helper()
	var cur any = v
	for p := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s: %v", path, v)
		cur = m[p]
	}
	s, ok := cur.(string)
	require.True(t, ok, "%s is not a string in %v", path, v)
	return s
}

// TestCLI runs the built latchkey against a running suite as a user would: log in, then
// every command's happy path in tables and in --json, an API error, logging out.
func TestCLI(t *testing.T) {
	s := startSuite(t)
	cli := buildCLI(t)
	acct := s.SignUp("cli")

	// Not logged in: a clear error, nothing sent.
	_, errs, status := cli.run("", "keys", "list", "--api", s.api)
	require.Equal(t, 1, status)
	require.Contains(t, errs, "not logged in")

	// A wrong password: the envelope's message and request id, exit 1, no session kept.
	_, errs, status = cli.run("wrong-password\n", "login", "--api", s.api, "--email", acct.Email)
	require.Equal(t, 1, status, errs)
	require.Regexp(t, `latchkey: .+\n  code: unauthenticated \(HTTP 401\)\n  request id: req_\S+\n`, errs)
	session := filepath.Join(cli.config, "latchkey", "session.json")
	require.NoFileExists(t, session)

	// Log in, the password piped; the session file is the user's only.
	out := cli.ok(acct.Password+"\n", "login", "--api", s.api, "--email", acct.Email)
	require.Contains(t, out, "Logged in to "+s.api+" as "+acct.Email)
	info, err := os.Stat(session)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	dirInfo, err := os.Stat(filepath.Dir(session))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dirInfo.Mode().Perm())
	kept, err := os.ReadFile(session) //nolint:gosec // the test's file
	require.NoError(t, err)
	require.NotContains(t, string(kept), acct.Password)
	// LATCHKEY_PASSWORD works as well, and --json says who without the token.
	cli.env = []string{"LATCHKEY_PASSWORD=" + acct.Password}
	login := cli.json("", "login", "--api", s.api, "--email", acct.Email)
	cli.env = nil
	require.Equal(t, acct.AccountID, str(t, login, "account_id"))
	require.NotContains(t, login, "token")

	t.Run("projects", func(t *testing.T) {
		created := cli.json("", "projects", "create", "cli-web", "--allowed-origin", "https://app.example.com")
		id := str(t, created, "project.id")
		out := cli.ok("", "projects", "list")
		require.Regexp(t, `(?m)^ID\s+NAME\s+ENVIRONMENTS`, out)
		require.Regexp(t, `(?m)^`+id+`\s+cli-web\s+dev,stg,prd\s+https://app.example.com`, out)
		listed := cli.json("", "projects", "list")
		require.NotEmpty(t, listed["projects"])
		require.Contains(t, cli.ok("", "projects", "get", id), "cli-web")
		out = cli.ok("", "projects", "create", "cli-other")
		require.Regexp(t, `Created project prj_\S+ \(cli-other\)`, out)
	})

	project := str(t, cli.json("", "projects", "create", "cli-keys"), "project.id")

	t.Run("keys", func(t *testing.T) {
		// Create: the secret shown once, in the table and in --json.
		out := cli.ok("", "keys", "create", "--type", "ingest", "--project", project, "--environment", "prd", "--name", "people")
		require.Regexp(t, `Key key_\S+ \(ingest, people\) created: lk_ing_\S+…`, out)
		require.Equal(t, 1, strings.Count(out, "lk_ing_")-1, "the secret once, besides the display prefix:\n%s", out)
		created := cli.json("", "keys", "create", "--type", "ingest", "--project", project, "--environment", "prd", "--name", "scripts")
		id, secret := str(t, created, "key.id"), str(t, created, "secret")
		prefix := str(t, created, "key.display_prefix")
		require.True(t, strings.HasPrefix(secret, prefix))

		// List and get: display prefixes, never the secret.
		out = cli.ok("", "keys", "list", "--project", project)
		require.Regexp(t, `(?m)^ID\s+TYPE\s+NAME\s+PREFIX`, out)
		require.Regexp(t, `(?m)^`+id+`\s+ingest\s+scripts\s+`+prefix+`…\s+`+project+`\s+prd\s+active`, out)
		require.NotContains(t, out, secret)
		listed := cli.json("", "keys", "list", "--project", project)
		require.Len(t, listed["keys"], 2)
		require.NotContains(t, cli.ok("", "keys", "list", "--project", project, "--json"), secret)
		out = cli.ok("", "keys", "get", id)
		require.Regexp(t, `(?m)^status:\s+active$`, out)
		require.Equal(t, id, str(t, cli.json("", "keys", "get", id), "key.id"))

		// Verify reads the key from standard input and answers by exit status.
		out = cli.ok(secret+"\n", "keys", "verify", "--capability", "ingest")
		require.Contains(t, out, "valid: key "+id)
		require.NotContains(t, out, secret)
		require.Equal(t, "ok", str(t, cli.json(secret, "keys", "verify"), "code"))

		// Rotate: a new secret, the old key in grace.
		rotated := cli.json("", "keys", "rotate", id, "--grace", "1h")
		newID, newSecret := str(t, rotated, "key.id"), str(t, rotated, "secret")
		require.NotEmpty(t, str(t, rotated, "previous.grace_until"))
		out = cli.ok("", "keys", "rotate", newID, "--grace", "0s")
		require.Contains(t, out, "Its secret, shown this once")
		require.Contains(t, out, "The previous key "+newID)

		// Revoke, waiting for the gateways; the key then verifies as revoked, exit 1.
		third := str(t, cli.json("", "keys", "create", "--type", "ingest", "--project", project, "--environment", "dev", "--name", "doomed"), "key.id")
		out = cli.ok("", "keys", "revoke", third, "--reason", "cli test", "--wait")
		require.Regexp(t, `Key `+third+` \(lk_ing_\S+…\) is revoked since `, out)
		require.Contains(t, out, "Gateways that dropped it: 1 of 1 live (complete")
		revoked := cli.json("", "keys", "revoke", newID, "--reason", "cli test")
		require.Equal(t, "revoked", str(t, revoked, "key.status"))
		out, _, status := cli.run(newSecret, "keys", "verify")
		require.Equal(t, 1, status)
		require.Equal(t, "not valid: revoked\n", out)

		// Import a key minted elsewhere, read from standard input, never echoed.
		reg, err := keyformat.LoadProfile("default")
		require.NoError(t, err)
		minted, err := reg.Generate("ingest")
		require.NoError(t, err)
		out = cli.ok(minted+"\n", "keys", "import", "--type", "ingest", "--project", project, "--environment", "stg", "--name", "adopted")
		require.Regexp(t, `Imported key key_\S+ \(ingest, adopted\): lk_ing_`, out)
		require.NotContains(t, out, minted)
		require.Contains(t, cli.ok(minted, "keys", "verify"), "valid: key ")

		// An error: the envelope's message, code and request id on standard error, exit 1.
		missing := id[:len(id)-4] + "zzzz"
		out, errs, status = cli.run("", "keys", "get", missing)
		require.Equal(t, 1, status)
		require.Empty(t, out)
		require.Regexp(t, `^latchkey: .*not found.*\n  code: not_found \(HTTP 404\)\n  request id: req_[A-Za-z0-9]+\n$`, errs)
	})

	t.Run("servers", func(t *testing.T) {
		created := cli.json("", "servers", "create", "web-1", "--project", project, "--hostname", "web-1.fra.example.net", "--tag", "fra,web", "--idempotency-key", "cli-web-1")
		id, apiKey := str(t, created, "server.id"), str(t, created, "server.api_key")
		require.True(t, strings.HasPrefix(apiKey, "lk_srv_"), apiKey)
		again := cli.json("", "servers", "create", "web-1", "--project", project, "--hostname", "web-1.fra.example.net", "--tag", "fra,web", "--idempotency-key", "cli-web-1")
		require.Equal(t, id, str(t, again, "server.id"), "the retry made nothing")
		out := cli.ok("", "servers", "create", "db-1", "--project", project)
		require.Contains(t, out, "Its key, shown this once")
		out = cli.ok("", "servers", "list", "--tag", "fra")
		require.Regexp(t, `(?m)^`+id+`\s+web-1\s+web-1.fra.example.net\s+fra,web\s+`+project+`\s+lk_srv_\S+…\s+active`, out)
		require.NotContains(t, out, "db-1")
		require.NotContains(t, out, apiKey)
		require.Len(t, cli.json("", "servers", "list", "--project", project)["servers"], 2)
		require.Contains(t, cli.ok("", "servers", "get", id), "web-1.fra.example.net")
		rotated := cli.json("", "servers", "rotate-key", id)
		require.NotEqual(t, apiKey, str(t, rotated, "server.api_key"))
		out = cli.ok("", "servers", "rotate-key", id)
		require.Regexp(t, `The previous key key_\S+ \(lk_srv_\S+…\) works until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\.\n$`, out)
		out = cli.ok("", "servers", "delete", id)
		require.Contains(t, out, "Deleted server "+id)
		_, errs, status := cli.run("", "servers", "get", id)
		require.Equal(t, 1, status)
		require.Contains(t, errs, "code: not_found")
	})

	t.Run("audit", func(t *testing.T) {
		// The events of the calls above reach the log within a moment.
		require.Eventually(t, func() bool {
			out, _, status := cli.run("", "audit", "tail", "--action", "keys.revoke")
			return status == 0 && strings.Count(out, " keys.revoke ") == 2
		}, 10*time.Second, 100*time.Millisecond)
		out := cli.ok("", "audit", "tail", "-n", "1000")
		require.Regexp(t, `(?m)^TIME \(UTC\)\s+ACTION\s+RESULT`, out)
		require.Contains(t, out, " keys.create ")
		require.Contains(t, out, " servers.delete ")
		lines := strings.Split(strings.TrimSpace(cli.ok("", "audit", "tail", "--json", "--action", "keys.revoke")), "\n")
		require.Len(t, lines, 2)
		for _, l := range lines {
			var e map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &e), l)
			require.Equal(t, "keys.revoke", e["action"])
		}
		require.Regexp(t, `^The audit chain holds: \d+ events checked\.\n$`, cli.ok("", "audit", "verify"))
		require.Equal(t, true, cli.json("", "audit", "verify")["ok"])
	})

	t.Run("audit tail --follow", func(t *testing.T) {
		cmd := cli.cmd("", "audit", "tail", "--follow", "--interval", "200ms", "--action", "keys.create", "--json")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var errs lockedBuffer
		cmd.Stderr = &errs
		require.NoError(t, cmd.Start())
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// The latest keys.create events first (at most 20 of them), then, once following, a new one.
		require.Eventually(t, func() bool { return strings.Contains(errs.String(), "(following new events; Ctrl-C stops)") },
			10*time.Second, 20*time.Millisecond, "%s", errs.String())
		r := s.Must(200, s.Call("POST", "/v1/keys", acct.Token, map[string]any{"type": "ingest", "project_id": project, "environment": "dev", "name": "while-following"}))
		newID := r.Str("key.id")
		deadline := time.After(15 * time.Second)
		for found := false; !found; {
			select {
			case l, ok := <-lines:
				require.True(t, ok, "tail stopped: %s", errs.String())
				var e map[string]any
				require.NoError(t, json.Unmarshal([]byte(l), &e), l)
				require.Equal(t, "keys.create", e["action"])
				found = e["resource_id"] == newID
			case <-deadline:
				t.Fatalf("tail --follow did not print the new event; stderr: %s", errs.String())
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		for range lines { //nolint:revive // drain until the process closes its output
		}
		require.NoError(t, cmd.Wait(), "Ctrl-C ends a follow cleanly: %s", errs.String())
	})

	t.Run("token from the environment", func(t *testing.T) {
		other := &latchkeyCLI{t: t, bin: cli.bin, config: t.TempDir(), env: []string{"LATCHKEY_API=" + s.api, "LATCHKEY_TOKEN=" + acct.Token}}
		require.Len(t, other.json("", "keys", "list", "--project", project, "--type", "ingest")["keys"], 7, "the keys made above, and the one made while following")
		// The login's token goes only to the API it came from.
		_, errs, status := cli.run("", "keys", "list", "--api", "http://127.0.0.1:1")
		require.Equal(t, 1, status)
		require.Contains(t, errs, "logged in to "+s.api+", not http://127.0.0.1:1")
	})

	t.Run("help", func(t *testing.T) {
		for _, path := range [][]string{
			{},
			{"dev"},
			{"login"},
			{"logout"},
			{"projects"},
			{"projects", "list"},
			{"projects", "create"},
			{"projects", "get"},
			{"keys"},
			{"keys", "create"},
			{"keys", "list"},
			{"keys", "get"},
			{"keys", "rotate"},
			{"keys", "revoke"},
			{"keys", "verify"},
			{"keys", "import"},
			{"servers"},
			{"servers", "list"},
			{"servers", "create"},
			{"servers", "get"},
			{"servers", "rotate-key"},
			{"servers", "delete"},
			{"audit"},
			{"audit", "tail"},
			{"audit", "verify"},
			{"scan"},
		} {
			out := cli.ok("", append(path, "--help")...)
			require.Contains(t, out, "Usage:\n  latchkey "+strings.Join(path, " "), path)
		}
		require.Regexp(t, `^latchkey \S+ \(revision \S+\)\n$`, cli.ok("", "--version"))
		_, errs, status := cli.run("", "keys", "create", "--bogus")
		require.Equal(t, 2, status)
		require.Contains(t, errs, "unknown flag: --bogus")
	})

	t.Run("logout", func(t *testing.T) {
		kept, err := os.ReadFile(session) //nolint:gosec // the test's file
		require.NoError(t, err)
		require.Contains(t, cli.ok("", "logout"), "Logged out of "+s.api)
		require.NoFileExists(t, session)
		// The session ended on the server too; a command with the ended session says so.
		s.Must(401, s.Call("GET", "/v1/projects", sessionToken(t, kept), nil))
		require.NoError(t, os.WriteFile(session, kept, 0o600))
		_, errs, status := cli.run("", "projects", "list")
		require.Equal(t, 1, status)
		require.Regexp(t, `code: unauthenticated \(HTTP 401\)\n  request id: req_\S+\n  hint: the session may have ended: run .latchkey login. again\n$`, errs)
		require.NoError(t, os.Remove(session))
		_, errs, status = cli.run("", "keys", "list")
		require.Equal(t, 1, status)
		require.Contains(t, errs, "not logged in")
	})
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sessionToken is the token of a session file's contents.
func sessionToken(t *testing.T, file []byte) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal(file, &s))
	require.NotEmpty(t, s.Token)
	return s.Token
}

// TestCLIScan: `latchkey scan` finds keys in files and standard input with no login and no
// server, prints where and the display prefix, never the key, and answers by exit status.
func TestCLIScan(t *testing.T) {
	cli := buildCLI(t)
	generate := func(profile, typ string) string {
		r, err := keyformat.LoadProfile(profile)
		require.NoError(t, err)
		k, err := r.Generate(typ)
		require.NoError(t, err)
		return k
	}
	dir := t.TempDir()
	key, other := generate("default", "ingest"), generate("default", "account")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "clean.txt"), []byte("nothing here but lk_ing_ and snake_case\n"), 0o600))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "sub", ".git"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", ".env"), []byte("A=1\nAPI_KEY="+key+"\n  token: "+other+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", ".git", "config"), []byte(key), 0o600))

	out := cli.ok("", "scan", filepath.Join(dir, "clean.txt"))
	require.Empty(t, out)

	out, errs, status := cli.run("", "scan", dir)
	require.Equal(t, 1, status, errs)
	env := filepath.Join(dir, "sub", ".env")
	require.Equal(t, env+":2:9: ingest "+key[:len("lk_ing_")+8]+"… verified\n"+
		env+":3:10: account "+other[:len("lk_acct_")+8]+"… verified\n", out, ".git skipped, positions 1-based")
	require.NotContains(t, out+errs, key)
	require.NotContains(t, out+errs, other)

	out, _, status = cli.run("", "scan", dir, "--json")
	require.Equal(t, 1, status)
	require.NotContains(t, out, key)
	var found []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var f map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &f), l)
		found = append(found, f)
	}
	require.Equal(t, []map[string]any{
		{"file": env, "line": 2.0, "column": 9.0, "type": "ingest", "display_prefix": key[:len("lk_ing_")+8], "verified": true, "legacy": false},
		{"file": env, "line": 3.0, "column": 10.0, "type": "account", "display_prefix": other[:len("lk_acct_")+8], "verified": true, "legacy": false},
	}, found)

	// Standard input, another profile: no checksum, so only unverified.
	dt := generate("deeptracer", "ingest")
	out, _, status = cli.run("key="+dt, "scan", "--profile", "deeptracer")
	require.Equal(t, 1, status)
	require.Equal(t, "-:1:5: ingest "+dt[:3+8]+"… unverified (type without checksum)\n", out)

	// Errors exit 2: a missing file, an unknown profile.
	_, errs, status = cli.run("", "scan", filepath.Join(dir, "missing"))
	require.Equal(t, 2, status)
	require.Contains(t, errs, "missing")
	_, errs, status = cli.run("", "scan", "--profile", "no-such-profile", dir)
	require.Equal(t, 2, status)
	require.Contains(t, errs, "no-such-profile")
}

// TestCLIDev: `latchkey dev` (what `make run` runs) starts the whole suite, prints where
// everything is, answers /healthz, and stops cleanly on SIGTERM.
func TestCLIDev(t *testing.T) {
	cli := buildCLI(t)
	dbURL, natsURL, ns := testutil.DatabaseURL(t), testutil.NATSURL(), testutil.Namespace(t)
	for attempt := 1; ; attempt++ {
		cmd := cli.cmd("", "dev")
		cmd.Dir = t.TempDir() // its .cache/dev-pepper and signing key go here
		cmd.Env = append(cmd.Env, "DATABASE_URL="+dbURL, "NATS_URL="+natsURL, "LATCHKEY_NAMESPACE="+ns,
			"LATCHKEY_OPERATOR_TOKEN=dev-test-"+testutil.Suffix(), "LATCHKEY_HTTP_ADDR=127.0.0.1:0",
			"ACCOUNTS_GRPC_ADDR="+testutil.FreeAddr(t), "KEYS_GRPC_ADDR="+testutil.FreeAddr(t),
			"AUDIT_GRPC_ADDR=127.0.0.1:0", "GATEWAY_HTTP_ADDR=127.0.0.1:0", "GATEWAY_GRPC_ADDR=127.0.0.1:0")
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		var errs lockedBuffer
		cmd.Stderr = &errs
		require.NoError(t, cmd.Start())
		var printed strings.Builder
		rest := ""
		sc := bufio.NewScanner(stdout)
		for rest == "" && sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if after, ok := strings.CutPrefix(sc.Text(), "REST API on http://"); ok {
				rest, _, _ = strings.Cut(after, ",")
			}
		}
		if rest == "" {
			_ = cmd.Wait()
			if attempt < 3 && strings.Contains(errs.String(), "address already in use") {
				continue // a free port picked above was taken meanwhile
			}
			t.Fatalf("latchkey dev did not come up:\n%s%s", printed.String(), errs.String())
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		out := printed.String()
		require.Regexp(t, `(?m)^Latchkey is up:\n(  .+\n)+`, out)
		require.Regexp(t, `(?m)^  rest\s+127\.0\.0\.1:\d+$`, out)
		require.Regexp(t, `(?m)^  ingest-gateway http\s+127\.0\.0\.1:\d+$`, out)
		require.Contains(t, out, "operator token       (LATCHKEY_OPERATOR_TOKEN)")
		require.Eventually(t, func() bool {
			resp, err := http.Get("http://" + rest + "/healthz") //nolint:noctx // a test's probe
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, 20*time.Second, 50*time.Millisecond, "GET /healthz: %s", errs.String())
		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, cmd.Wait(), "SIGTERM stops latchkey dev cleanly: %s", errs.String())
		return
	}
}
