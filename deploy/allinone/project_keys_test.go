package allinone

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/audit"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/keys"
)

// DeepTracer's gateway error bodies, byte for byte (pkg/keyformat/profiles/deeptracer.json).
const (
	missingKeyBody = `{"error": "Missing or invalid API key"}`
	originBody     = `{"error": "Origin not allowed"}`
)

// projectKey is what a DeepTracer project key looks like.
var projectKey = regexp.MustCompile(`^dt_[0-9a-f]{24}$`)

// TestProjectKeyFlow is DeepTracer's scheme end to end (DESIGN "Seed schemes": one key per
// project, replaced on revoke, its own error bodies): creating a project answers its key;
// the key ingests from servers (no Origin) and, with no allowed_origins, from any browser;
// a project with allowed_origins refuses a foreign Origin with the profile's exact 403
// body, still takes requests without one; a garbage key gets the exact 401 body over
// OTLP/HTTP and /ingest/logs (and the profile's message over OTLP/gRPC); a second key of
// the project is 409 already_exists; revoking the key answers its replacement, the old key
// refused at every gateway as soon as the receipt is complete and the replacement working;
// and the audit log holds the creation and the revocation.
func TestProjectKeyFlow(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, _ *gateway.Config, _ *audit.Config) {
		k.KeyProfile = "deeptracer"
	}))
	token, account := s.signUp("deeptracer")
	traces := string(tracesBody(t))
	send := func(key string, headers ...string) testutil.Reply {
		t.Helper()
		return s.Send("POST", s.ingest+"/v1/traces", key, traces, append([]string{"Content-Type", "application/x-protobuf"}, headers...)...)
	}
	requireBody := func(r testutil.Reply, status int, body, what string) {
		t.Helper()
		require.Equal(t, status, r.Status, "%s: %s", what, r.Raw)
		require.Equal(t, body, r.Raw, what)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"), what)
		require.NotEmpty(t, r.Header.Get("X-Request-Id"), what)
	}

	// A project is created with its key.
	created := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "checkout", "allowed_origins": []string{}}))
	project, keyID, key := created.Str("project.id"), created.Str("key.id"), created.Str("secret")
	require.Regexp(t, projectKey, key)
	require.Equal(t, project, created.Str("key.project_id"))
	require.Equal(t, "ingest", created.Str("key.type"))

	// From a server and from any browser: the project allows every origin.
	require.Equal(t, 200, send(key, "X-Request-Id", "dt-server").Status)
	r := send(key, "Origin", "https://anywhere.example.com", "X-Request-Id", "dt-browser")
	require.Equal(t, 200, r.Status, r.Raw)
	require.Equal(t, "https://anywhere.example.com", r.Header.Get("Access-Control-Allow-Origin"))
	stored := s.storedRequestIDs(s.ingestSubject(account, project, "_", "traces"))
	require.ElementsMatch(t, []string{"dt-server", "dt-browser"}, stored, "the project's data, under no environment")

	// A project that names its origins: those and servers only.
	webApp := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "web", "allowed_origins": []string{"https://app.example.com"}}))
	webKey := webApp.Str("secret")
	require.Regexp(t, projectKey, webKey)
	require.Equal(t, 200, send(webKey, "Origin", "https://app.example.com").Status)
	require.Equal(t, 200, send(webKey).Status, "no Origin: a server")
	requireBody(send(webKey, "Origin", "https://evil.example.com"), 403, originBody, "foreign Origin")

	// Garbage and unknown keys: the exact 401 body, on every ingest route.
	for what, bad := range map[string]string{
		"garbage":         "not-a-key",
		"unknown dt_ key": "dt_0123456789abcdef01234567",
		"no key":          "",
	} {
		requireBody(send(bad), 401, missingKeyBody, what+" (OTLP/HTTP)")
		requireBody(s.Send("POST", s.ingest+"/ingest/logs", bad, `{"service": "checkout", "logs": [{"message": "hi"}]}`,
			"Content-Type", "application/json"), 401, missingKeyBody, what+" (/ingest/logs)")
	}
	conn, err := grpc.NewClient(s.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer not-a-key"),
		ptraceotlp.NewExportRequest())
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Equal(t, "Missing or invalid API key", status.Convert(err).Message())

	// One key per project.
	s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project}).RequireError(t, 409, "already_exists")

	// Revoked, the key is replaced in the same call; the old key is refused at every
	// gateway by the time the receipt is complete, and the replacement works.
	rev := s.Must(200, s.Call("POST", "/v1/keys/"+keyID+":revoke", token, map[string]any{"reason": "leaked", "wait_for_gateways": true}))
	require.Equal(t, "revoked", rev.Str("key.status"))
	require.Equal(t, true, rev.Get("receipt.complete"), rev.Raw)
	replacement, replacementID := rev.Str("replacement.secret"), rev.Str("replacement.key.id")
	require.Regexp(t, projectKey, replacement)
	require.Equal(t, project, rev.Str("replacement.key.project_id"))
	requireBody(send(key), 401, missingKeyBody, "the revoked key")
	require.Equal(t, 200, send(replacement, "X-Request-Id", "dt-replacement").Status)
	require.Equal(t, 200, send(replacement, "Origin", "https://anywhere.example.com").Status)
	require.Contains(t, s.storedRequestIDs(s.ingestSubject(account, project, "_", "traces")), "dt-replacement")
	s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project}).RequireError(t, 409, "already_exists")

	// The audit log: the project, its key minted for the caller, the revocation naming the
	// replacement.
	var actions map[string]map[string]any
	testutil.Eventually(t, 10*time.Second, func() bool {
		actions = map[string]map[string]any{}
		for _, e := range s.Must(200, s.Call("GET", "/v1/audit/events?limit=100", token, nil)).Get("events").([]any) {
			ev := e.(map[string]any)
			if id := testutil.Str(ev, "resource_id"); id == keyID || id == project {
				actions[testutil.Str(ev, "action")] = ev
			}
		}
		return actions["keys.create"] != nil && actions["keys.revoke"] != nil && actions["projects.create"] != nil
	}, "the audit events of the project's key")
	require.Equal(t, project, testutil.Str(actions["keys.create"], "details", "project_id"))
	require.Equal(t, replacementID, testutil.Str(actions["keys.revoke"], "details", "replacement_key_id"))
}

// TestProjectKeysDefaultProfile: under the default profile nothing of DeepTracer's scheme
// shows: a project is created without a key, and a bad key at the gateway gets the envelope.
func TestProjectKeysDefaultProfile(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("default-project")
	r := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "checkout"}))
	require.Nil(t, r.Get("key"))
	require.Empty(t, r.Str("secret"))
	bad := s.Send("POST", s.ingest+"/v1/traces", "not-a-key", string(tracesBody(t)), "Content-Type", "application/x-protobuf")
	bad.RequireError(t, 401, "unauthenticated")
	require.NotEqual(t, missingKeyBody, bad.Raw)
}

// TestReadmeProjectKeys runs the README's DeepTracer walk-through, verbatim, under the
// deeptracer profile: the project's key sends from a server and its page, the refusals are
// the profile's bodies, a second key is already_exists, and the revocation's replacement
// sends where the old key is refused.
func TestReadmeProjectKeys(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accounts.Config, k *keys.Config, _ *gateway.Config, _ *audit.Config) {
		k.KeyProfile = "deeptracer"
	}))
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", readmeShell(t, "\n### One key per project: DeepTracer's scheme\n"))
	cmd.Env = append(os.Environ(), "API="+s.api, "INGEST="+s.ingest)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "walk-through failed:\n%s", out)
	text := string(out)
	require.Regexp(t, `"key":"dt_[0-9a-f]{8}","type":"ingest"`, text)
	require.Equal(t, 3, strings.Count(text, `{"accepted":1}`), "server, page and replacement:\n%s", text)
	require.Contains(t, text, originBody+"\n")
	require.Contains(t, text, missingKeyBody+"\n")
	require.Contains(t, text, `{"error":"already_exists"}`)
	require.Regexp(t, `\{"revoked":"revoked","replacement":"dt_[0-9a-f]{8}","receipt_complete":true\}`, text)
	require.Contains(t, text, "the old key: 401")
	require.NotContains(t, text, "null", text)
}
