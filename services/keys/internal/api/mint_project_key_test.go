package api_test

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// deeptracerKey is what a key of deeptracer's per_project type looks like: dt_ and 24
// lower-case hex characters, nothing else.
var deeptracerKey = regexp.MustCompile(`^dt_[0-9a-f]{24}$`)

// withProfile runs the keys service under a key profile.
func withProfile(profile string) func(*accounts.Config, *keys.Config) {
	return func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = profile }
}

// createProject calls POST /v1/projects with no allowed origins.
func (s *suite) createProject(token string, headers ...string) testutil.Reply {
	s.t.Helper()
	return s.Call("POST", "/v1/projects", token, map[string]any{"name": "web-app", "allowed_origins": []string{}}, headers...)
}

// TestProjectCreationMintsItsKey: under deeptracer, POST /v1/projects answers the project
// with its key (dt_ and 24 hex characters, the per_project type "ingest", bound to the
// project and none of its environments, created by the caller, no expiry) and the secret,
// which verifies; key.created is published and keys.create audited in the owner's account
// (by the accounts service, for the caller); the key is listed with the project's keys, and
// a retry with the same Idempotency-Key answers the same project and secret and mints nothing.
func TestProjectCreationMintsItsKey(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	_, js := linktest.Connect(t)
	a := s.SignUp("project-key")
	r := s.Must(200, s.createProject(a.Token))
	project, keyID, secret := r.Str("project.id"), r.Str("key.id"), r.Str("secret")
	require.Regexp(t, deeptracerKey, secret)
	require.Equal(t, "ingest", r.Str("key.type"))
	require.Equal(t, project, r.Str("key.project_id"))
	require.Equal(t, a.AccountID, r.Str("key.account_id"))
	require.Empty(t, r.Str("key.environment"), "the project's one key serves all its environments")
	require.Equal(t, "active", r.Str("key.status"))
	require.Nil(t, r.Get("key", "expires_at"))
	require.Equal(t, a.UserID, r.Str("key.created_by"))
	require.Equal(t, "web-app", r.Str("key.name"))
	require.Equal(t, secret[:len("dt_")+8], r.Str("key.display_prefix"))

	v := s.Verify(s.operator, secret, "capability", "ingest")
	require.Equal(t, true, v.Get("valid"), v.Raw)
	require.Equal(t, keyID, v.Str("key.id"))
	listed := s.Must(200, s.Call("GET", "/v1/keys?project_id="+project, a.Token, nil)).Get("keys").([]any)
	require.Len(t, listed, 1)
	require.NotContains(t, s.Must(200, s.Call("GET", "/v1/keys/"+keyID, a.Token, nil)).Raw, secret)

	ev := s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == keyID })
	require.Equal(t, project, ev.GetKeyCreated().GetProjectId())
	require.Equal(t, "ingest", ev.GetKeyCreated().GetType())
	require.Equal(t, a.AccountID, ev.GetAccountId())
	audit, raw := s.findAudit(js, a.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.create" })
	require.Equal(t, keyID, audit.GetResourceId())
	require.Equal(t, "ok", audit.GetResult())
	require.Equal(t, project, audit.GetDetails()["project_id"])
	require.Equal(t, a.UserID, audit.GetDetails()["created_by"])
	require.Equal(t, r.RequestID(), audit.GetRequestId(), "the project's request id carries over to the keys service")
	require.NotContains(t, string(raw), secret)

	// A retry with the same Idempotency-Key: the same answer, secret included (sealed
	// while stored), and no second project or key.
	first := s.Must(200, s.createProject(a.Token, "Idempotency-Key", "project-once"))
	again := s.Must(200, s.createProject(a.Token, "Idempotency-Key", "project-once"))
	require.Equal(t, first.Str("project.id"), again.Str("project.id"))
	require.Equal(t, first.Str("secret"), again.Str("secret"))
	require.Len(t, s.Must(200, s.Call("GET", "/v1/projects", a.Token, nil)).Get("projects").([]any), 2)
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", a.Token, nil)).Get("keys").([]any), 2)
}

// TestProjectCreationWithoutPerProjectType: under the default profile a project is created
// as before, with no key (null) and no secret (empty) in the answer, and mints nothing.
func TestProjectCreationWithoutPerProjectType(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("no-project-key")
	r := s.Must(200, s.createProject(token))
	require.NotEmpty(t, r.Str("project.id"))
	require.Nil(t, r.Get("key"), "no key (the REST bridge writes every field: null)")
	require.Empty(t, r.Str("secret"))
	require.Empty(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Get("keys"))
}

// TestMintProjectKeyRefusals: the internal RPC is the operator's alone, checks its input
// and the project, and mints one key per project; a profile without a per_project type
// has nothing to mint.
func TestMintProjectKeyRefusals(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	a := s.SignUp("mint-refusals")
	project := s.Must(200, s.createProject(a.Token)).Str("project.id")
	other := s.SignUp("mint-refusals-other")
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	internal := keysv1.NewInternalServiceClient(conn)
	op := auth.OutgoingBearer(context.Background(), s.operator)
	good := func() *keysv1.MintProjectKeyRequest {
		return &keysv1.MintProjectKeyRequest{AccountId: a.AccountID, ProjectId: project, CreatedBy: a.UserID, Name: "web-app"}
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
		edit func(*keysv1.MintProjectKeyRequest)
		code apierr.Code
	}{
		{"no credentials", context.Background(), nil, apierr.Unauthenticated},
		{"a session", auth.OutgoingBearer(context.Background(), a.Token), nil, apierr.Unauthenticated},
		{"bad account id", op, func(r *keysv1.MintProjectKeyRequest) { r.AccountId = "../acc" }, apierr.InvalidArgument},
		{"bad project id", op, func(r *keysv1.MintProjectKeyRequest) { r.ProjectId = "prj_" }, apierr.InvalidArgument},
		{"no created_by", op, func(r *keysv1.MintProjectKeyRequest) { r.CreatedBy = "" }, apierr.InvalidArgument},
		{"control character in created_by", op, func(r *keysv1.MintProjectKeyRequest) { r.CreatedBy = "usr\x00" }, apierr.InvalidArgument},
		{"oversized created_by", op, func(r *keysv1.MintProjectKeyRequest) { r.CreatedBy = strings.Repeat("u", 65) }, apierr.InvalidArgument},
		{"oversized name", op, func(r *keysv1.MintProjectKeyRequest) { r.Name = strings.Repeat("n", 201) }, apierr.InvalidArgument},
		{"unknown project", op, func(r *keysv1.MintProjectKeyRequest) { r.ProjectId = "prj_01jq0000000000000000000000" }, apierr.NotFound},
		{"another account's project", op, func(r *keysv1.MintProjectKeyRequest) { r.AccountId = other.AccountID }, apierr.NotFound},
		{"the project has its key", op, nil, apierr.AlreadyExists},
	} {
		req := good()
		if c.edit != nil {
			c.edit(req)
		}
		_, err := internal.MintProjectKey(c.ctx, req)
		require.True(t, apierr.IsCode(err, c.code), "%s: %v", c.name, err)
	}
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", a.Token, nil)).Get("keys").([]any), 1, "nothing more was minted")

	def := startSuite(t)
	conn2, err := grpc.NewClient(def.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn2.Close()
	b := def.SignUp("mint-default")
	defProject := def.Must(200, def.createProject(b.Token)).Str("project.id")
	_, err = keysv1.NewInternalServiceClient(conn2).MintProjectKey(auth.OutgoingBearer(context.Background(), def.operator),
		&keysv1.MintProjectKeyRequest{AccountId: b.AccountID, ProjectId: defProject, CreatedBy: b.UserID})
	require.True(t, apierr.IsCode(err, apierr.NotFound), "%v", err)
	require.Contains(t, apierr.FromError(err).Message, "per_project")
}

// TestProjectCreationWhenKeysIsDown: the project never outlives a failed creation. An
// accounts service whose keys service is down (after it learned the profile's per_project
// type) creates the project, cannot mint its key, deletes the project again (with
// project.deleted) and answers 503; one that never reached the keys service creates
// nothing and answers 503; either way the project list holds only what was answered.
func TestProjectCreationWhenKeysIsDown(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	_, js := linktest.Connect(t)
	a := s.SignUp("keys-down")

	// An accounts service of the suite's database and namespace, and a keys service of its
	// own that the test stops.
	accountsAddr, keysAddr := testutil.FreeAddr(t), testutil.FreeAddr(t)
	acfg, kcfg := s.configs(t)
	acfg.GRPCAddr, acfg.KeysAddr = accountsAddr, keysAddr
	kcfg.GRPCAddr, kcfg.AccountsAddr, kcfg.KeyProfile = keysAddr, accountsAddr, "deeptracer"
	accountsREST, _ := runUnit(t, func(ctx context.Context) (*server.Unit, error) { return accounts.New(ctx, acfg, zap.NewNop()) })
	_, stopKeys := runUnit(t, func(ctx context.Context) (*server.Unit, error) { return keys.New(ctx, kcfg, zap.NewNop()) })
	api := testutil.NewClient(t, accountsREST)
	api.WaitHealthy()

	first := api.Must(200, api.Call("POST", "/v1/projects", a.Token, map[string]any{"name": "kept"}))
	require.Regexp(t, deeptracerKey, first.Str("secret"))
	stopKeys()

	r := api.Call("POST", "/v1/projects", a.Token, map[string]any{"name": "not-kept"})
	r.RequireError(t, 503, "unavailable")
	require.Contains(t, r.Message(), "nothing was created")
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	projects := s.Must(200, s.Call("GET", "/v1/projects", a.Token, nil)).Get("projects").([]any)
	require.Len(t, projects, 1, "the project whose key could not be minted is gone")
	require.Equal(t, first.Str("project.id"), testutil.Str(projects[0].(map[string]any), "id"))
	deleted := s.findEvent(js, "project.deleted", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == a.AccountID })
	require.NotEqual(t, first.Str("project.id"), deleted.GetProjectDeleted().GetProjectId())
	require.Len(t, s.Must(200, s.Call("GET", "/v1/keys", a.Token, nil)).Get("keys").([]any), 1)

	// An accounts service that never reached a keys service cannot tell whether a project
	// needs a key: it creates none.
	acfg2, _ := s.configs(t)
	acfg2.GRPCAddr, acfg2.KeysAddr = testutil.FreeAddr(t), testutil.FreeAddr(t) // nothing listens there
	blindREST, _ := runUnit(t, func(ctx context.Context) (*server.Unit, error) { return accounts.New(ctx, acfg2, zap.NewNop()) })
	blind := testutil.NewClient(t, blindREST)
	blind.WaitHealthy()
	r = blind.Call("POST", "/v1/projects", a.Token, map[string]any{"name": "never"})
	r.RequireError(t, 503, "unavailable")
	require.Len(t, s.Must(200, s.Call("GET", "/v1/projects", a.Token, nil)).Get("projects").([]any), 1)

	// The suite's own accounts service, whose keys service is up, creates as usual.
	s.Must(200, s.createProject(a.Token))
}

// TestProjectCreationsConcurrent: many projects created at once each get their own key.
func TestProjectCreationsConcurrent(t *testing.T) {
	s := startSuite(t, withProfile("deeptracer"))
	token, _ := s.signUp("concurrent-projects")
	replies := make([]testutil.Reply, 10)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Go(func() { replies[i] = s.createProject(token) })
	}
	wg.Wait()
	secrets := map[string]string{}
	for _, r := range replies {
		s.Must(200, r)
		secrets[r.Str("project.id")] = r.Str("secret")
		require.Equal(t, r.Str("project.id"), r.Str("key.project_id"))
	}
	require.Len(t, secrets, len(replies))
}

// configs are the suite's test configurations of accounts and keys (its database,
// namespace, NATS, operator token and pepper; no limits or caps), for running more of them
// beside it; the caller sets their addresses.
func (s *suite) configs(t testing.TB) (accounts.Config, keys.Config) {
	t.Helper()
	acfg, err := accounts.ConfigFromEnv()
	require.NoError(t, err)
	kcfg, err := keys.ConfigFromEnv()
	require.NoError(t, err)
	acfg.HTTPAddr, kcfg.HTTPAddr = "", ""
	acfg.DatabaseURL, kcfg.DatabaseURL = s.dbURL, s.dbURL
	acfg.NATSURL, kcfg.NATSURL = s.natsURL, s.natsURL
	acfg.Namespace, kcfg.Namespace = s.ns, s.ns
	acfg.OperatorToken, kcfg.OperatorToken = s.operator, s.operator
	kcfg.Pepper = "test-pepper-" + strings.Repeat("x", 40)
	acfg.Limits, kcfg.Limits = limits.Config{}, limits.Config{}
	acfg.ProjectChangesPerHour, kcfg.RotationsPerHour, kcfg.AccountKeysPerHour = 0, 0, 0
	kcfg.DirectoryTTL = time.Second
	acfg.ShutdownGrace, kcfg.ShutdownGrace = time.Second, time.Second
	return acfg, kcfg
}

// runUnit runs one service's unit beside the suite, with a REST listener of its own, until
// the test ends or stop is called; it returns the REST base URL and stop.
func runUnit(t testing.TB, build func(ctx context.Context) (*server.Unit, error)) (rest string, stop func()) {
	t.Helper()
	addrs, stop, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		u, err := build(ctx)
		if err != nil {
			return err
		}
		return server.Run(ctx, server.RunConfig{Logger: zap.NewNop(), HTTPAddr: "127.0.0.1:0", Grace: time.Second, OnListening: listening}, u)
	})
	require.NoError(t, err)
	return "http://" + addrs["rest"], stop
}
