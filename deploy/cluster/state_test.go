package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRestartKeepsState: `make cluster` started again on the same database (and
// .cache/cluster) finds what the previous run made: a key made then still verifies at
// every gateway (the same pepper), the audit chain signed then still verifies (the same
// signing key), and the operator token is the same. The first calls are made as soon as
// Start returns, so "ready" must mean ready: no 503 from a service that has not yet
// reached accounts. topology.json is there while the cluster runs, gone once it stops.
func TestRestartKeepsState(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	bin := filepath.Join(root, ".cache", "cluster", "test-bin")
	require.NoError(t, Build(t.Context(), root, bin, ""))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for _, env := range []string{"LATCHKEY_OPERATOR_TOKEN", "LATCHKEY_PEPPER", "AUDIT_SIGNING_KEY"} {
		t.Setenv(env, "") // the secrets kept in dir, whatever the developer's shell says
	}
	admin := os.Getenv("LATCHKEY_TEST_DATABASE_URL")
	if admin == "" {
		admin = LocalPostgres
	}
	name := "latchkey_restart_" + randomHex(6)
	dbURL, err := Database(ctx, admin, name)
	require.NoError(t, err)
	t.Cleanup(func() { _ = DropDatabase(context.Background(), admin, name) })
	dir := filepath.Join(root, ".cache", "cluster", "restart")
	require.NoError(t, os.RemoveAll(dir))
	start := func(servicesFirst bool) *Cluster {
		c, err := Start(ctx, Config{
			BinDir: bin, Dir: dir, DatabaseURL: dbURL, ServicesFirst: servicesFirst,
			Env: []string{"AUDIT_CHECKPOINT_EVERY=1"},
		})
		require.NoError(t, err)
		t.Cleanup(c.Stop)
		require.FileExists(t, c.Topology())
		return c
	}

	first := start(false)
	s := newSuite(t, first)
	var signup struct {
		Session struct{ Token string } `json:"session"`
	}
	require.Equal(t, 200, s.call(ctx, Accounts, "POST", "/v1/accounts", "", map[string]string{
		"email": "restart-" + randomHex(4) + "@example.com", "password": "Correct-Horse-Battery-9", "account_name": "Restart",
	}, &signup))
	token := signup.Session.Token
	var proj struct {
		Project struct{ ID string } `json:"project"`
	}
	require.Equal(t, 200, s.call(ctx, Accounts, "POST", "/v1/projects", token, map[string]string{"name": "restart"}, &proj))
	var key struct {
		Secret string `json:"secret"`
	}
	require.Equal(t, 200, s.call(ctx, Keys, "POST", "/v1/keys", token, map[string]string{
		"type": "ingest", "project_id": proj.Project.ID, "environment": "prd", "name": "restart",
	}, &key))
	ingest(t, first, key.Secret)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var cps struct {
			Checkpoints []any `json:"checkpoints"`
		}
		require.Equal(t, 200, s.call(ctx, Audit, "GET", "/v1/audit/checkpoints", token, nil, &cps))
		if len(cps.Checkpoints) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no signed checkpoint of the account's events")
		time.Sleep(200 * time.Millisecond)
	}
	first.Stop()
	require.NoFileExists(t, first.Topology(), "topology.json of a stopped cluster")

	// The services first this time: they dial accounts before it listens (it waits for
	// its streams), and their connections back off.
	second := start(true)
	s.c = second
	require.Equal(t, first.Secrets, second.Secrets)
	var v struct {
		OK      bool   `json:"ok"`
		Problem string `json:"problem"`
	}
	require.Equal(t, 200, s.call(ctx, Audit, "GET", "/v1/audit/verify", token, nil, &v))
	require.True(t, v.OK, "the chain signed before the restart: %s", v.Problem)
	ingest(t, second, key.Secret)
	for _, f := range []string{"operator-token", "pepper", "audit-signing-key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
	}
}

// ingest sends one OTLP/HTTP payload with key through every gateway of c, once each,
// and requires it accepted.
func ingest(t *testing.T, c *Cluster, key string) {
	t.Helper()
	for _, gw := range c.Service(Gateway) {
		req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+gw.Addresses.HTTP+"/v1/logs", bytes.NewReader(otlpLogs("restart")))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "%s: %s", gw.Name, b)
	}
}

// TestKeptSecretsHonoursEnvironment: a secret set in the environment is the one used,
// and is not written to the state directory.
func TestKeptSecretsHonoursEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LATCHKEY_OPERATOR_TOKEN", "lkop_from-the-environment-0123456789")
	t.Setenv("LATCHKEY_PEPPER", "")
	t.Setenv("AUDIT_SIGNING_KEY", "")
	s, err := KeptSecrets(dir)
	require.NoError(t, err)
	require.Equal(t, "lkop_from-the-environment-0123456789", s.OperatorToken)
	require.NoFileExists(t, filepath.Join(dir, "operator-token"))
	again, err := KeptSecrets(dir)
	require.NoError(t, err)
	require.Equal(t, s, again)
}

// TestLockOneClusterAtATime: while one process holds a state directory's lock, another
// is refused at once with the holder's pid; when the holder dies (SIGKILL, no clean-up)
// the kernel releases it.
func TestLockOneClusterAtATime(t *testing.T) {
	if dir := os.Getenv("CLUSTER_TEST_HOLD_LOCK"); dir != "" {
		_, err := Lock(dir)
		require.NoError(t, err)
		_, _ = os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		return
	}
	dir := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestLockOneClusterAtATime$") //nolint:gosec // this test binary
	holder.Env = append(os.Environ(), "CLUSTER_TEST_HOLD_LOCK="+dir)
	out, err := holder.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, holder.Start())
	line := make([]byte, 7)
	_, err = io.ReadFull(out, line)
	require.NoError(t, err)
	require.Equal(t, "locked\n", string(line))

	_, err = Lock(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), "pid "+strconv.Itoa(holder.Process.Pid))
	require.True(t, strings.Contains(err.Error(), "one at a time"), err.Error())

	require.NoError(t, holder.Process.Kill())
	_ = holder.Wait()
	unlock, err := Lock(dir)
	require.NoError(t, err)
	_, err = Lock(dir) // another open of the file: refused too, even in this process
	require.Error(t, err)
	unlock()
	unlock, err = Lock(dir)
	require.NoError(t, err)
	unlock()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
