package allinone

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// proAccount signs up an account on the pro plan (account keys need it) and returns a
// session that has just re-verified its password, the account id and a second session of
// the same user that has not.
func (s *suite) proAccount(name string) (steppedUp, accountID, plain string) {
	s.t.Helper()
	userSeq++
	email := fmt.Sprintf("%s-%d-%s@example.com", name, userSeq, testutil.Suffix())
	r := s.must(200, s.call("POST", "/v1/accounts", "", map[string]any{
		"email": email, "password": "Correct-Horse-Battery-9", "account_name": name,
	}))
	steppedUp, accountID = r.str("session.token"), r.str("account.id")
	s.must(200, s.call("POST", "/v1/admin/accounts/"+accountID+":setPlan", s.operator, map[string]any{"plan": "pro"}))
	s.must(200, s.call("POST", "/v1/account/verify-password", steppedUp, map[string]any{"password": "Correct-Horse-Battery-9"}))
	plain = s.must(200, s.call("POST", "/v1/sessions", "", map[string]any{"email": email, "password": "Correct-Horse-Battery-9"})).str("session.token")
	return steppedUp, accountID, plain
}

// TestNoUpdateRevivesAKey: a key that can no longer be used (expired, revoked, past its
// rotation grace) keeps its expiry and capabilities whatever PATCH sends, and widening an
// account key's life or rights takes a stepped-up session, never an account key.
func TestNoUpdateRevivesAKey(t *testing.T) {
	s := startSuite(t)
	token, _, plain := s.proAccount("revive")
	project := s.project(token)
	later := time.Now().Add(time.Hour).Format(time.RFC3339)
	patch := func(id, tok string, body map[string]any, query ...string) reply {
		return s.call("PATCH", "/v1/keys/"+id+strings.Join(query, ""), tok, body)
	}

	soon := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "dev", "expires_at": time.Now().Add(1500 * time.Millisecond).Format(time.RFC3339Nano),
	}))
	expired, expiredSecret := soon.str("key.id"), soon.str("secret")
	testutil.Eventually(t, 5*time.Second, func() bool { return s.verify(token, expiredSecret).str("code") == "expired" }, "the key to expire")
	// Each with an expiry, so that removing it would be a change.
	withExpiry := func() (string, string) {
		r := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
			"type": "ingest", "project_id": project, "environment": "dev", "expires_at": later,
		}))
		return r.str("key.id"), r.str("secret")
	}
	revoked, revokedSecret := withExpiry()
	s.must(200, s.call("POST", "/v1/keys/"+revoked+":revoke", token, map[string]any{}))
	rotated, rotatedSecret := withExpiry()
	s.must(200, s.call("POST", "/v1/keys/"+rotated+":rotate", token, map[string]any{"grace_period_seconds": 0}))
	dead := map[string]string{expired: expiredSecret, revoked: revokedSecret, rotated: rotatedSecret}
	for id, secret := range dead {
		requireError(t, patch(id, token, map[string]any{"expires_at": time.Now().Add(2 * time.Hour).Format(time.RFC3339)}), 409, "conflict")
		requireError(t, patch(id, token, map[string]any{}, "?update_mask=expires_at"), 409, "conflict")
		requireError(t, patch(id, token, map[string]any{"capabilities": []string{"ingest"}, "expires_at": time.Now().Add(30 * time.Minute).Format(time.RFC3339)}), 409, "conflict")
		require.NotEqual(t, "ok", s.verify(token, secret).str("code"), id)
		// Renaming is bookkeeping, not revival.
		s.must(200, patch(id, token, map[string]any{"name": "retired"}))
	}

	// Account keys: a later or removed expiry or more capabilities need a stepped-up
	// session; another account key (or the key itself) never may.
	admin := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "account", "capabilities": []string{"keys:read", "keys:write"}, "expires_at": later,
	}))
	adminKey, adminID := admin.str("secret"), admin.str("key.id")
	narrow := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "account", "capabilities": []string{"keys:read"}, "expires_at": later,
	}))
	narrowID := narrow.str("key.id")
	muchLater := time.Now().Add(48 * time.Hour).Format(time.RFC3339)
	widen := []struct {
		body  map[string]any
		query string
	}{
		{map[string]any{"expires_at": muchLater}, ""},
		{map[string]any{}, "?update_mask=expires_at"},
		{map[string]any{"capabilities": []string{"keys:read", "audit:read"}}, ""},
	}
	for _, w := range widen {
		requireError(t, patch(narrowID, adminKey, w.body, w.query), 403, "permission_denied")
		requireError(t, patch(adminID, adminKey, w.body, w.query), 403, "permission_denied")
		requireError(t, patch(narrowID, plain, w.body, w.query), 403, "step_up_required")
	}
	// Narrowing needs no step-up, and the stepped-up session may widen.
	s.must(200, patch(narrowID, plain, map[string]any{"expires_at": time.Now().Add(30 * time.Minute).Format(time.RFC3339)}))
	r := s.must(200, patch(narrowID, token, map[string]any{"capabilities": []string{"keys:read", "audit:read"}, "expires_at": muchLater}))
	require.ElementsMatch(t, []string{"keys:read", "audit:read"}, r.get("key.capabilities"))
}

// TestKeysOfADeletedProject: once its project is deleted, a key stops working at the
// gateway (by the project.deleted event, though the keys service caches projects for an
// hour here), cannot be rotated, and no key can be created for the project.
func TestKeysOfADeletedProject(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, _ := s.signUp("deleted")
	project := s.project(token)
	id, key := s.ingestKey(token, project)
	body := string(tracesBody(t))
	post := func() reply {
		return s.send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	}
	s.must(200, post())
	s.must(200, s.call("DELETE", "/v1/projects/"+project, token, nil))
	testutil.Eventually(t, 2*time.Second, func() bool { return post().status == 401 }, "the gateway to refuse the deleted project's key")
	requireError(t, post(), 401, "unauthenticated")

	r := s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})
	requireError(t, r, 404, "not_found")
	require.Contains(t, r.str("message"), project)
	k := s.must(200, s.call("GET", "/v1/keys/"+id, token, nil))
	require.Equal(t, "active", k.str("key.status"), "a refused rotation changes nothing")
	require.Empty(t, k.str("key.rotated_to_id"))
	require.Len(t, s.must(200, s.call("GET", "/v1/keys", token, nil)).get("keys"), 1, "and mints nothing")
	requireError(t, s.call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd",
	}), 404, "not_found")
}

// TestFailedChangesSpendNoCap: caps are taken in the change's own transaction, so a change
// refused or failed after taking its cap leaves the cap unspent: account-key rotations
// refused by the account-keys cap spend no rotation, and deleting a project that does not
// exist spends no project change.
func TestFailedChangesSpendNoCap(t *testing.T) {
	s := startSuite(t, withConfig(func(a *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.RotationsPerHour, k.AccountKeysPerHour = 2, 1
		a.ProjectChangesPerHour = 2
	}))
	token, _, _ := s.proAccount("caps")
	for range 3 {
		requireError(t, s.call("DELETE", "/v1/projects/prj_01j00000000000000000000000", token, nil), 404, "not_found")
	}
	project := s.project(token)
	s.project(token)
	requireError(t, s.call("POST", "/v1/projects", token, map[string]any{"name": "third"}), 429, "rate_limited")

	acct := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "account", "capabilities": []string{"keys:read"}})).str("key.id")
	for range 3 {
		requireError(t, s.call("POST", "/v1/keys/"+acct+":rotate", token, map[string]any{}), 429, "rate_limited")
	}
	id, _ := s.ingestKey(token, project)
	id = s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).str("key.id")
	id = s.must(200, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{})).str("key.id")
	requireError(t, s.call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}), 429, "rate_limited")
}

// TestNoKeyOutlivesItsEnvironment: a project cannot drop an environment that live keys
// (active or in rotation grace) are bound to: 409 naming them, nothing changed, and the
// key goes on working at the gateway. Once they are revoked the environment can go, no
// key can be minted in it, and adding it back revives nothing. A key whose environment
// the project no longer lists (as one minted while the drop was under way would be) does
// not verify, nor once the environment is added back, nor can it be rotated.
func TestNoKeyOutlivesItsEnvironment(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, _ := s.signUp("envs")
	project := s.project(token)
	prd, key := s.ingestKey(token, project)
	graced, _ := s.ingestKey(token, project)
	successor := s.must(200, s.call("POST", "/v1/keys/"+graced+":rotate", token, map[string]any{"grace_period_seconds": 3600})).str("key.id")
	s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "dev"}))
	body := string(tracesBody(t))
	post := func(key string) reply {
		return s.send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	}
	s.must(200, post(key))

	drop := map[string]any{"environments": []string{"dev", "stg"}}
	r := s.call("PATCH", "/v1/projects/"+project, token, drop)
	requireError(t, r, 409, "conflict")
	for _, id := range []string{prd, graced, successor} {
		require.Contains(t, r.str("message"), id)
	}
	require.Contains(t, r.str("message"), "prd")
	require.Equal(t, []any{"dev", "stg", "prd"}, s.must(200, s.call("GET", "/v1/projects/"+project, token, nil)).get("project.environments"))
	s.must(200, post(key))
	// Adding an environment, or dropping one no live key uses, asks nothing of anyone.
	s.must(200, s.call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd", "qa"}}))
	s.must(200, s.call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))

	for _, id := range []string{prd, graced, successor} {
		s.must(200, s.call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
	}
	s.must(200, s.call("PATCH", "/v1/projects/"+project, token, drop))
	requireError(t, post(key), 401, "unauthenticated")
	requireError(t, s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd"}), 400, "invalid_argument")
	s.must(200, s.call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))
	requireError(t, post(key), 401, "unauthenticated")

	// A stg key, then stg gone from under it behind the API's back (the end state of a key
	// minted while the drop was under way): the key does not verify.
	stg := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "stg"})).str("secret")
	require.Equal(t, "ok", s.verify(s.operator, stg).str("code"))
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), `UPDATE accounts.projects SET environments = array_remove(environments, 'stg') WHERE id = $1`, project)
	require.NoError(t, err)
	require.Equal(t, "not_found", s.verify(s.operator, stg).str("code"))
	// Adding it back revives nothing: the key was minted in a stay of stg that has ended.
	s.must(200, s.call("PATCH", "/v1/projects/"+project, token, map[string]any{"environments": []string{"dev", "stg", "prd"}}))
	require.Equal(t, "not_found", s.verify(s.operator, stg).str("code"))
	requireError(t, post(stg), 401, "unauthenticated")
	stgID := s.must(200, s.call("GET", "/v1/keys?environment=stg", token, nil)).get("keys")
	requireError(t, s.call("POST", "/v1/keys/"+stgID.([]any)[0].(map[string]any)["id"].(string)+":rotate", token, map[string]any{}), 409, "conflict")
	fresh := s.must(200, s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "stg"})).str("secret")
	require.Equal(t, "ok", s.verify(s.operator, fresh).str("code"), "a key minted in the new stay works")
	s.must(200, post(fresh))
}

// TestNoKeySurvivesARacedDrop: keys minted while their environment is being dropped may
// slip past the drop's check for live keys, but none of them ever works again: not while
// the environment is gone, and not after it is added back (README, "Keys/projects").
// Each round mints three keys in e2 while e2 is dropped, then adds e2 back and asks, at
// the keys service and at the gateway, about every key minted so far.
func TestNoKeySurvivesARacedDrop(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.FailedAuthBurst = 100_000 // every ingest here fails, from one address
	}))
	token, _ := s.signUp("envrace")
	project := s.must(200, s.call("POST", "/v1/projects", token, map[string]any{
		"name": "race", "environments": []string{"prd", "e2"},
	})).str("project.id")
	body := string(tracesBody(t))
	both := map[string]any{"environments": []string{"prd", "e2"}}
	dropE2 := map[string]any{"environments": []string{"prd"}}
	var minted []string // secrets
	raced := 0          // rounds whose drop passed with keys minted around it
	for round := range 25 {
		creates := make([]reply, 3)
		var drop reply
		var wg sync.WaitGroup
		for i := range creates {
			wg.Add(1)
			go func() {
				defer wg.Done()
				creates[i] = s.call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "e2"})
			}()
		}
		wg.Add(1)
		go func() { defer wg.Done(); drop = s.call("PATCH", "/v1/projects/"+project, token, dropE2) }()
		wg.Wait()
		var ids []string
		for _, c := range creates {
			if c.status == 400 {
				requireError(t, c, 400, "invalid_argument") // minted after the drop
				continue
			}
			s.must(200, c)
			ids = append(ids, c.str("key.id"))
			minted = append(minted, c.str("secret"))
		}
		switch drop.status {
		case 409: // the keys were live before the drop asked: revoke them and drop again
			requireError(t, drop, 409, "conflict")
			for _, id := range ids {
				s.must(200, s.call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
			}
			s.must(200, s.call("PATCH", "/v1/projects/"+project, token, dropE2))
		default:
			s.must(200, drop)
			if len(ids) > 0 {
				raced++
			}
		}
		s.must(200, s.call("PATCH", "/v1/projects/"+project, token, both))
		for _, secret := range minted {
			require.NotEqual(t, "ok", s.verify(s.operator, secret).str("code"), "round %d: a key minted before e2 was dropped verifies after it is added back", round)
		}
		for _, secret := range minted[max(0, len(minted)-len(ids)):] {
			r := s.send("POST", s.ingest+"/v1/traces", secret, body, "Content-Type", "application/x-protobuf")
			requireError(t, r, 401, "unauthenticated")
		}
	}
	t.Logf("%d of 25 rounds dropped e2 with keys minted around the drop", raced)
	// The round's keys were asked about once each; ask the gateway about all of them again,
	// now that every project.updated event has long been applied.
	for _, secret := range minted {
		requireError(t, s.send("POST", s.ingest+"/v1/traces", secret, body, "Content-Type", "application/x-protobuf"), 401, "unauthenticated")
	}
}
