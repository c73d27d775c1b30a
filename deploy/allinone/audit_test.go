package allinone

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
)

// auditTrail reads every audit event handed to JetStream so far, by request id.
func (s *suite) auditTrail() map[string][]*auditv1.AuditEvent {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL)
	require.NoError(s.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, natsx.AuditStream(s.ns), jetstream.OrderedConsumerConfig{})
	require.NoError(s.t, err)
	info, err := cons.Info(ctx)
	require.NoError(s.t, err)
	out := map[string][]*auditv1.AuditEvent{}
	if info.NumPending == 0 {
		return out
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(s.t, err)
	for m := range batch.Messages() {
		var ev auditv1.AuditEvent
		require.NoError(s.t, proto.Unmarshal(m.Data(), &ev))
		require.Equal(s.t, ev.GetId(), m.Headers().Get(jetstream.MsgIDHeader))
		require.Equal(s.t, natsx.AuditSubject(s.ns, ev.GetAccountId()), m.Subject())
		out[ev.GetRequestId()] = append(out[ev.GetRequestId()], &ev)
	}
	return out
}

// TestEveryCallIsAudited: every management call of accounts and keys, allowed or refused,
// hands exactly one audit event to JetStream, saying who did what to what, and how it went.
func TestEveryCallIsAudited(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.RotationsPerHour = 1
	}))
	n := 0
	call := func(method, path, token string, body any, headers ...string) (testutil.Reply, string) {
		n++
		id := fmt.Sprintf("audit-test-%d-%s", n, testutil.Suffix())
		return s.Call(method, path, token, body, append([]string{"X-Request-Id", id, "User-Agent", "audit-test/1.0"}, headers...)...), id
	}
	email := "audited-" + testutil.Suffix() + "@example.com"
	r, signupID := call("POST", "/v1/accounts", "", map[string]any{"email": email, "password": "Correct-Horse-Battery-9", "account_name": "audited"})
	token, account, user := r.Str("session.token"), r.Str("account.id"), r.Str("user.id")
	r, projectID := call("POST", "/v1/projects", token, map[string]any{"name": "p"})
	project := r.Str("project.id")
	r, createID := call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd"})
	key := r.Str("key.id")
	r, rotateID := call("POST", "/v1/keys/"+key+":rotate", token, map[string]any{})
	successor := r.Str("key.id")
	_, limitedID := call("POST", "/v1/keys/"+successor+":rotate", token, map[string]any{})
	call("POST", "/v1/projects", token, map[string]any{"name": "a"}, "Idempotency-Key", "k1")
	_, reusedID := call("POST", "/v1/projects", token, map[string]any{"name": "b"}, "Idempotency-Key", "k1")
	_, unauthID := call("GET", "/v1/keys", "lks_"+strings.Repeat("x", 43), nil)
	_, notFoundID := call("GET", "/v1/keys/key_01jq0000000000000000000000", token, nil)
	_, forbiddenID := call("POST", "/v1/keys", token, map[string]any{"type": "account"})
	_, badID := call("GET", "/v1/keys?page_size=1000", token, nil)
	_, planID := call("POST", "/v1/admin/accounts/"+account+":setPlan", s.operator, map[string]any{"plan": "pro"})
	_, verifyID := call("POST", "/v1/keys:verify", token, map[string]any{"key": "x"})
	_, jsonID := call("POST", "/v1/keys", token, `{"type": `) // refused by the REST bridge itself

	want := []struct {
		requestID, action, resourceType, resourceID, result, actorType, actorID string
	}{
		{signupID, "accounts.signup", "account", account, "ok", "anonymous", ""},
		{projectID, "projects.create", "project", project, "ok", "user", user},
		{createID, "keys.create", "key", key, "ok", "user", user},
		{rotateID, "keys.rotate", "key", key, "ok", "user", user},
		{unauthID, "keys.list", "key", "", "unauthenticated", "anonymous", ""},
		{notFoundID, "keys.get", "key", "key_01jq0000000000000000000000", "not_found", "user", user},
		{forbiddenID, "keys.create", "key", "", "plan_required", "user", user},
		{badID, "keys.list", "key", "", "invalid_argument", "user", user},
		{planID, "admin.set_plan", "account", account, "ok", "operator", ""},
		{jsonID, "keys.create", "key", "", "invalid_argument", "user", user},
		{limitedID, "keys.rotate", "key", successor, "rate_limited", "user", user},
		{reusedID, "projects.create", "project", "", "idempotency_key_reused", "user", user},
	}
	var trail map[string][]*auditv1.AuditEvent
	testutil.Eventually(t, 5*time.Second, func() bool {
		trail = s.auditTrail()
		for _, w := range want {
			if len(trail[w.requestID]) == 0 {
				return false
			}
		}
		return true
	}, "every call's audit event in JetStream")
	for _, w := range want {
		evs := trail[w.requestID]
		require.Len(t, evs, 1, "exactly one event for %s", w.action)
		ev := evs[0]
		require.Equal(t, w.action, ev.GetAction())
		require.Equal(t, w.resourceType, ev.GetResourceType(), w.action)
		require.Equal(t, w.resourceID, ev.GetResourceId(), w.action)
		require.Equal(t, w.result, ev.GetResult(), w.action)
		require.Equal(t, w.actorType, ev.GetActor().GetType(), w.action)
		require.Equal(t, w.actorID, ev.GetActor().GetId(), w.action)
		require.Equal(t, "127.0.0.1", ev.GetClientIp(), w.action)
		require.Equal(t, "audit-test/1.0", ev.GetUserAgent(), w.action)
		if w.result != "unauthenticated" {
			require.Equal(t, account, ev.GetAccountId(), w.action)
		}
		if w.result != "ok" {
			require.NotEmpty(t, ev.GetDetails()["message"], w.action)
		}
	}
	require.NotEmpty(t, trail[rotateID][0].GetDetails()["new_key_id"])
	require.Empty(t, trail[verifyID], "verification is not a management call")
}

// TestAuditLogEndToEnd: the audit service stores what accounts and keys hand over, and an
// account reads its own trail (and only its own) and verifies its chain.
func TestAuditLogEndToEnd(t *testing.T) {
	s := startSuite(t)
	token, account := s.signUp("trail")
	project := s.Project(token)
	id, _ := s.IngestKey(token, project)
	s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
	s.Call("GET", "/v1/keys/key_01jq0000000000000000000000", token, nil).RequireError(t, 404, "not_found")
	other, _ := s.signUp("other")
	s.Project(other)

	var events []any
	testutil.Eventually(t, 10*time.Second, func() bool {
		r := s.Must(200, s.Call("GET", "/v1/audit/events?limit=100", token, nil))
		events, _ = r.Get("events").([]any)
		return len(events) >= 5 // sign-up, project, key, revoke, the 404
	}, "the account's events in the audit log")
	actions := map[string]string{}
	for _, e := range events {
		ev := e.(map[string]any)
		require.Equal(t, account, ev["account_id"], "only this account's events")
		actions[ev["action"].(string)] = ev["result"].(string)
	}
	require.Equal(t, "ok", actions["accounts.signup"])
	require.Equal(t, "ok", actions["keys.revoke"])
	require.Equal(t, "not_found", actions["keys.get"])

	filtered := s.Must(200, s.Call("GET", "/v1/audit/events?resource_id="+id, token, nil))
	for _, e := range filtered.Get("events").([]any) {
		require.Equal(t, id, e.(map[string]any)["resource_id"])
	}
	v := s.Must(200, s.Call("GET", "/v1/audit/verify", token, nil))
	require.Equal(t, true, v.Get("ok"), v.Raw)
	checked, _ := v.Get("events_checked").(float64)
	require.GreaterOrEqual(t, checked, float64(5), v.Raw)
	s.Call("GET", "/v1/audit/events", "", nil).RequireError(t, 401, "unauthenticated")

	// An account cannot name another; the operator names any, and "_" for refused calls
	// no account could be named for, like this one.
	s.Call("GET", "/v1/keys", "", nil).RequireError(t, 401, "unauthenticated")
	otherAccount := s.Must(200, s.Call("GET", "/v1/account", other, nil)).Str("account.id")
	s.Call("GET", "/v1/audit/events?account_id="+otherAccount, token, nil).RequireError(t, 403, "permission_denied")
	s.Call("GET", "/v1/audit/events", s.operator, nil).RequireError(t, 400, "invalid_argument")
	testutil.Eventually(t, 10*time.Second, func() bool {
		r := s.Must(200, s.Call("GET", "/v1/audit/events?account_id=_", s.operator, nil))
		evs, _ := r.Get("events").([]any)
		for _, e := range evs {
			if ev := e.(map[string]any); ev["action"] == "keys.list" && ev["result"] == "unauthenticated" {
				return true
			}
		}
		return false
	}, "the unauthenticated call's event, for the operator")
	ops := s.Must(200, s.Call("GET", "/v1/audit/verify?account_id="+account, s.operator, nil))
	require.Equal(t, true, ops.Get("ok"), ops.Raw)
}

// TestAuditOutage: with the audit service down, calls go on; when it starts, every event
// those calls made arrives, once.
func TestAuditOutage(t *testing.T) {
	s := startSuite(t, func(o *Options, _ *suite) { o.Services = []string{"accounts", "keys", "ingest-gateway"} })
	token, account := s.signUp("outage")
	project := s.Project(token)
	made := 2
	for range 10 {
		id, _ := s.IngestKey(token, project)
		s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
		made += 2
	}
	s.Call("GET", "/v1/keys?page_size=0x", token, nil).RequireError(t, 400, "invalid_argument")
	made++

	// Now the audit service, on the same database and stream.
	cfg, err := audit.ConfigFromEnv()
	require.NoError(t, err)
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.DatabaseURL, cfg.NATSURL = "127.0.0.1:0", "127.0.0.1:0", s.dbURL, s.natsURL
	cfg.Namespace, cfg.OperatorToken, cfg.ShutdownGrace = s.ns, s.operator, time.Second
	cfg.AccountsAddr, cfg.KeysAddr = s.accountsGRPC, s.keysGRPC
	ctx, cancel := context.WithCancel(context.Background())
	unit, err := audit.New(ctx, cfg, zap.NewNop())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, server.RunConfig{Logger: zap.NewNop(), Grace: time.Second}, unit) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	count := func() int {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM audit.events WHERE account_id = $1", account).Scan(&n))
		return n
	}
	testutil.Eventually(t, 15*time.Second, func() bool { return count() >= made }, fmt.Sprintf("every event stored (made %d)", made))
	require.Equal(t, made, count(), "each once")
}
