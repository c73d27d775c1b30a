package allinone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestQuickstart walks the README's quickstart: sign up, project, key, list, read, verify,
// rotate, revoke.
func TestQuickstart(t *testing.T) {
	s := startSuite(t)
	token, accountID := s.signUp("quickstart")
	require.NotEmpty(t, token)
	project := s.project(token, "https://app.example.com")

	created := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "name": "production-web",
		"metadata": map[string]string{"team": "web"},
	}))
	secret, id := created.str("secret"), created.str("key.id")
	require.True(t, strings.HasPrefix(secret, "lk_ing_"), secret)
	require.Equal(t, "active", created.str("key.status"))
	require.Equal(t, accountID, created.str("key.account_id"))
	require.Equal(t, secret[:len("lk_ing_")+8], created.str("key.display_prefix"))
	require.Equal(t, "web", created.str("key.metadata.team"))

	// The secret is shown once: never again in a read or a listing.
	got := s.must(200, s.call("GET", "/v1/keys/"+id, token, nil))
	require.NotContains(t, got.raw, secret)
	require.NotContains(t, got.raw, secret[len("lk_ing_")+8:])
	require.Equal(t, id, got.str("key.id"))
	list := s.must(200, s.call("GET", "/v1/keys?project_id="+project, token, nil))
	require.NotContains(t, list.raw, secret[len("lk_ing_")+8:])
	require.Len(t, list.get("keys"), 1)

	v := s.verify(token, secret, "origin", "https://app.example.com", "capability", "ingest")
	require.Equal(t, true, v.get("valid"), v.raw)
	require.Equal(t, "ok", v.str("code"))
	require.Equal(t, []any{"https://app.example.com"}, v.get("allowed_origins"))
	require.Equal(t, "origin_not_allowed", s.verify(token, secret, "origin", "https://evil.example.com").str("code"))
	require.Equal(t, "insufficient_capability", s.verify(token, secret, "capability", "keys:write").str("code"))

	rotated := s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	secret2, id2 := rotated.str("secret"), rotated.str("key.id")
	require.NotEqual(t, secret, secret2)
	require.Equal(t, id, rotated.str("previous.id"))
	require.Equal(t, "grace", rotated.str("previous.status"))
	require.Equal(t, id2, rotated.str("previous.rotated_to_id"))
	graceUntil, err := time.Parse(time.RFC3339Nano, rotated.str("previous.grace_until"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), graceUntil, time.Minute, "the default grace is 24h")
	require.Equal(t, true, s.verify(token, secret).get("valid"), "the old key works during grace")
	require.Equal(t, true, s.verify(token, secret2).get("valid"))

	revoked := s.must(200, s.call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "leaked"}))
	require.NotEmpty(t, revoked.str("key.revoked_at"))
	require.Equal(t, "leaked", revoked.str("key.revoke_reason"))
	require.Equal(t, "revoked", revoked.str("key.status"))
	v = s.verify(token, secret2)
	require.Equal(t, false, v.get("valid"))
	require.Equal(t, "revoked", v.str("code"))

	// Revoking again changes nothing and is not an error.
	again := s.must(200, s.call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "other"}))
	require.Equal(t, revoked.str("key.revoked_at"), again.str("key.revoked_at"))
	require.Equal(t, "leaked", again.str("key.revoke_reason"))

	requireError(t, s.call("GET", "/v1/keys", "", nil), 401, "unauthenticated")
}

func TestRotationGraceAndExpiry(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("grace")
	project := s.project(token)
	id, secret := s.ingestKey(token, project)

	r := s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{"grace_period_seconds": 0}))
	v := s.verify(token, secret)
	require.Equal(t, "expired", v.str("code"), "a zero grace ends the old key at once")
	require.Equal(t, "expired", v.str("key.status"))
	requireError(t, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}), 409, "conflict")
	requireError(t, s.call("POST", "/v1/keys/"+r.str("key.id")+":rotate", token, map[string]any{"grace_period_seconds": -1}), 400, "invalid_argument")

	// An expiry in the past is refused; one in the near future takes effect.
	requireError(t, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(-time.Hour).Format(time.RFC3339),
	}), 400, "invalid_argument")
	soon := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano),
	}))
	require.Equal(t, "ok", s.verify(token, soon.str("secret")).str("code"))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.verify(token, soon.str("secret")).str("code") == "expired"
	}, "the key to expire")
}

func TestKeysAreScopedToTheirAccount(t *testing.T) {
	s := startSuite(t)
	alice, _ := s.signUp("alice")
	bob, _ := s.signUp("bob")
	aliceProject := s.project(alice)
	id, secret := s.ingestKey(alice, aliceProject)

	requireError(t, s.call("GET", "/v1/keys/"+id, bob, nil), 404, "not_found")
	requireError(t, s.call("POST", "/v1/keys/"+id+":revoke", bob, map[string]any{}), 404, "not_found")
	requireError(t, s.call("POST", "/v1/keys/"+id+":rotate", bob, map[string]any{}), 404, "not_found")
	requireError(t, s.call("PATCH", "/v1/keys/"+id, bob, map[string]any{"name": "x"}), 404, "not_found")
	require.Equal(t, "not_found", s.verify(bob, secret).str("code"), "bob cannot probe alice's keys")
	require.Nil(t, s.verify(bob, secret).get("key"))
	requireError(t, s.call("POST", "/v1/keys", bob, map[string]any{"type": "ingest", "project_id": aliceProject, "environment": "prd"}), 404, "not_found")
	require.Empty(t, s.must(200, s.call("GET", "/v1/keys", bob, nil)).get("keys"))
	// The operator (and gateways, which use its token) can verify any key.
	require.Equal(t, true, s.verify(s.operator, secret).get("valid"))
}

func TestListFiltersAndPagination(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("lister")
	p1, p2 := s.project(token), s.project(token)
	var want []string
	for i := range 5 {
		p, env := p1, "prd"
		if i%2 == 1 {
			p, env = p2, "dev"
		}
		r := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": p, "environment": env, "name": fmt.Sprint("k", i)}))
		want = append([]string{r.str("key.id")}, want...) // newest first
	}
	revoked := want[0]
	s.must(200, s.call("POST", "/v1/keys/"+revoked+":revoke", token, map[string]any{}))

	var seen []string
	pageToken := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		r := s.must(200, s.call("GET", "/v1/keys?page_size=2&page_token="+pageToken, token, nil))
		for _, k := range r.get("keys").([]any) {
			seen = append(seen, k.(map[string]any)["id"].(string))
		}
		if pageToken = r.str("next_page_token"); pageToken == "" {
			break
		}
	}
	require.Equal(t, want, seen, "pages cover every key once, newest first")

	count := func(query string) int {
		return len(s.must(200, s.call("GET", "/v1/keys?"+query, token, nil)).get("keys").([]any))
	}
	require.Equal(t, 3, count("project_id="+p1))
	require.Equal(t, 2, count("project_id="+p2+"&environment=dev"))
	require.Equal(t, 0, count("project_id="+p1+"&environment=dev"))
	require.Equal(t, 1, count("status=revoked"))
	require.Equal(t, 4, count("status=active"))
	require.Equal(t, 5, count("type=ingest"))
}

func TestUpdateKey(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("updater")
	project := s.project(token)
	id, secret := s.ingestKey(token, project)

	r := s.must(200, s.call("PATCH", "/v1/keys/"+id, token, map[string]any{"name": "renamed", "metadata": map[string]string{"a": "b"}}))
	require.Equal(t, "renamed", r.str("key.name"))
	require.Equal(t, "b", r.str("key.metadata.a"))
	require.Equal(t, "prd", r.str("key.environment"), "fields not sent stay as they were")
	requireError(t, s.call("PATCH", "/v1/keys/"+id, token, map[string]any{"capabilities": []string{"keys:write"}}), 400, "invalid_argument")
	requireError(t, s.call("PATCH", "/v1/keys/"+id, token, map[string]any{"environment": "dev"}), 400, "invalid_argument")
	requireError(t, s.call("PATCH", "/v1/keys/"+id, token, map[string]any{}), 400, "invalid_argument")
	exp := time.Now().Add(-time.Minute).Format(time.RFC3339)
	requireError(t, s.call("PATCH", "/v1/keys/"+id, token, map[string]any{"expires_at": exp}), 400, "invalid_argument")
	require.Equal(t, "ok", s.verify(token, secret).str("code"))
}

// TestAccountKeys covers management keys: the pro plan, step-up, capabilities and the rule
// that an account key never mints another.
func TestAccountKeys(t *testing.T) {
	// The keys service keeps account facts for an hour: the plan change, the suspension
	// and the reinstatement below reach it by their events alone.
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, accountID := s.signUp("pro")
	project := s.project(token)
	create := map[string]any{"type": "account", "name": "ci", "capabilities": []string{"keys:read", "keys:write", "projects:read"}}

	requireError(t, s.call("POST", "/v1/keys", token, create), 403, "plan_required")
	s.must(200, s.call("POST", "/v1/admin/accounts/"+accountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.call("POST", "/v1/keys", token, create).str("error") == "step_up_required"
	}, "the plan change to reach keys")
	requireError(t, s.call("POST", "/v1/account/verify-password", token, map[string]any{"password": "wrong-password-123"}), 401, "unauthenticated")
	s.must(200, s.call("POST", "/v1/account/verify-password", token, map[string]any{"password": "Correct-Horse-Battery-9"}))
	r := s.must(200, s.call("POST", "/v1/keys", token, create))
	acctKey, acctKeyID := r.str("secret"), r.str("key.id")
	require.True(t, strings.HasPrefix(acctKey, "lk_acct_"))
	require.Empty(t, r.str("key.project_id"))

	// The account key manages ingest keys of its account...
	ing := s.must(200, s.call("POST", "/v1/keys", acctKey, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}))
	require.Equal(t, acctKeyID, ing.str("key.created_by"))
	s.must(200, s.call("GET", "/v1/keys", acctKey, nil))
	s.must(200, s.call("GET", "/v1/projects", acctKey, nil))
	// ...but never mints or rotates an account key, nor widens one.
	requireError(t, s.call("POST", "/v1/keys", acctKey, create), 403, "permission_denied")
	requireError(t, s.call("POST", "/v1/keys/"+acctKeyID+":rotate", acctKey, map[string]any{}), 403, "permission_denied")
	requireError(t, s.call("PATCH", "/v1/keys/"+acctKeyID, acctKey, map[string]any{"capabilities": []string{"keys:read", "keys:write", "audit:read"}}), 403, "permission_denied")
	// An ingest key is no management credential.
	requireError(t, s.call("GET", "/v1/keys", ing.str("secret"), nil), 401, "unauthenticated")

	readOnly := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).str("secret")
	requireError(t, s.call("POST", "/v1/keys", readOnly, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}), 403, "insufficient_capability")
	s.must(200, s.call("GET", "/v1/keys", readOnly, nil))

	// Suspended, the account's keys stop authenticating; reinstated, they work again.
	s.must(200, s.call("POST", "/v1/admin/accounts/"+accountID+":suspend", s.operator, map[string]any{"reason": "unpaid"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.call("GET", "/v1/keys", acctKey, nil).str("error") == "account_suspended"
	}, "the suspension to reach keys")
	s.must(200, s.call("POST", "/v1/admin/accounts/"+accountID+":reinstate", s.operator, map[string]any{}))
	testutil.Eventually(t, 5*time.Second, func() bool { return s.call("GET", "/v1/keys", acctKey, nil).status == 200 }, "the reinstatement to reach keys")

	// Revoked, the account key stops authenticating.
	s.must(200, s.call("POST", "/v1/keys/"+acctKeyID+":revoke", token, map[string]any{}))
	requireError(t, s.call("GET", "/v1/keys", acctKey, nil), 401, "unauthenticated")
}

func TestSuspendedAccountKeysStopVerifying(t *testing.T) {
	s := startSuite(t)
	token, accountID := s.signUp("suspend")
	_, secret := s.ingestKey(token, s.project(token))
	require.Equal(t, "ok", s.verify(s.operator, secret).str("code"))
	s.must(200, s.call("POST", "/v1/admin/accounts/"+accountID+":suspend", s.operator, map[string]any{"reason": "abuse"}))
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.verify(s.operator, secret).str("code") == "account_suspended"
	}, "suspension to reach keys")
}

func TestLastUsedAtIsKept(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("usage")
	id, secret := s.ingestKey(token, s.project(token))
	require.Empty(t, s.must(200, s.call("GET", "/v1/keys/"+id, token, nil)).str("key.last_used_at"))
	s.verify(s.operator, secret)
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.must(200, s.call("GET", "/v1/keys/"+id, token, nil)).str("key.last_used_at") != ""
	}, "last_used_at to be written")
}

// TestEventsReachTheStream checks the outbox: each change lands in JetStream once, with
// its event id as Nats-Msg-Id, promptly after the call returns.
func TestEventsReachTheStream(t *testing.T) {
	s := startSuite(t)
	nc, err := nats.Connect(s.natsURL)
	require.NoError(t, err)
	defer nc.Close()
	revokes := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(natsx.EventSubject(s.ns, "key.revoked"), revokes)
	require.NoError(t, err)
	defer sub.Unsubscribe()

	token, accountID := s.signUp("events")
	id, _ := s.ingestKey(token, s.project(token))
	s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	start := time.Now()
	s.must(200, s.call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"reason": "test"}))
	select {
	case m := <-revokes:
		t.Logf("key.revoked arrived %s after the call began", time.Since(start))
		var ev eventsv1.Event
		require.NoError(t, proto.Unmarshal(m.Data, &ev))
		require.Equal(t, id, ev.GetKeyRevoked().GetKeyId())
		require.Len(t, ev.GetKeyRevoked().GetKeyHash(), 32)
		require.Equal(t, accountID, ev.GetAccountId())
		require.Equal(t, ev.GetId(), m.Header.Get(jetstream.MsgIDHeader))
	case <-time.After(2 * time.Second):
		t.Fatal("no key.revoked event within 2s")
	}

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	stream, err := js.Stream(ctx, natsx.EventsStream(s.ns))
	require.NoError(t, err)
	kinds := map[string]int{}
	testutil.Eventually(t, 5*time.Second, func() bool {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(s.ns+".events.>"))
		if err != nil {
			return false
		}
		kinds = map[string]int{}
		for subj, n := range info.State.Subjects {
			kinds[strings.TrimPrefix(subj, s.ns+".events.")] = int(n)
		}
		return kinds["key.created"] == 1 && kinds["key.rotated"] == 1 && kinds["key.revoked"] == 1
	}, "created, rotated and revoked events, once each")
	require.Equal(t, 1, kinds["project.updated"], "the project's creation: %v", kinds)
}

// TestGRPCSurface calls the keys service over gRPC as a gateway would: VerifyKey with the
// operator token, and a typed error with ErrorInfo for a bad call.
func TestGRPCSurface(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("grpc")
	_, secret := s.ingestKey(token, s.project(token))
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := keysv1.NewKeysServiceClient(conn)
	ctx := auth.OutgoingBearer(context.Background(), s.operator)
	resp, err := client.VerifyKey(ctx, &keysv1.VerifyKeyRequest{Key: secret, Capability: "ingest"})
	require.NoError(t, err)
	require.True(t, resp.GetValid())
	require.Equal(t, "prd", resp.GetKey().GetEnvironment())

	_, err = client.GetKey(auth.OutgoingBearer(context.Background(), token), &keysv1.GetKeyRequest{Id: "nope"})
	require.True(t, apierr.IsCode(err, apierr.InvalidArgument), "%v", err)
	_, err = client.ListKeys(context.Background(), &keysv1.ListKeysRequest{})
	require.True(t, apierr.IsCode(err, apierr.Unauthenticated), "%v", err)

	health, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())
}

// TestStaleTokenDoesNotBlockLogin: a client still sending an old session token can log in
// again; only calls that need a caller refuse the token, with the reason.
func TestStaleTokenDoesNotBlockLogin(t *testing.T) {
	s := startSuite(t)
	email := "stale-" + testutil.Suffix() + "@example.com"
	r := s.must(200, s.call("POST", "/v1/accounts", "", map[string]any{"email": email, "password": "Correct-Horse-Battery-9", "account_name": "stale"}))
	old := r.str("session.token")
	s.must(200, s.call("DELETE", "/v1/sessions/current", old, nil))
	requireError(t, s.call("GET", "/v1/account", old, nil), 401, "unauthenticated")
	requireError(t, s.call("GET", "/v1/keys", old, nil), 401, "unauthenticated")
	login := s.must(200, s.call("POST", "/v1/sessions", old, map[string]any{"email": email, "password": "Correct-Horse-Battery-9"}))
	s.must(200, s.call("GET", "/v1/keys", login.str("session.token"), nil))
}
