package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

// mintAnonymous calls POST /v1/anonymous-keys with no credentials and requires a 200.
func (s *suite) mintAnonymous() testutil.Reply {
	s.t.Helper()
	return s.Must(200, s.Call("POST", "/v1/anonymous-keys", "", map[string]any{}))
}

// TestAnonymousKeys: under the default profile anyone mints an lk_anon_ key with no
// credentials; it belongs to no account, never expires, carries the type's capabilities
// (ingest and basic reads), is audited under no account, and is nobody's to manage.
func TestAnonymousKeys(t *testing.T) {
	s := startSuite(t)
	r := s.mintAnonymous()
	secret, id := r.Str("secret"), r.Str("key.id")
	require.True(t, strings.HasPrefix(secret, "lk_anon_"), "secret %q", secret)
	require.Equal(t, "anonymous", r.Str("key.type"))
	require.Empty(t, r.Str("key.account_id"))
	require.Empty(t, r.Str("key.project_id"))
	require.Empty(t, r.Str("key.environment"))
	require.Empty(t, r.Str("key.expires_at"), "an anonymous key never expires")
	require.Equal(t, "active", r.Str("key.status"))
	require.Equal(t, "anonymous", r.Str("key.created_by"))
	require.Equal(t, []any{"ingest", "read"}, r.Get("key.capabilities"))
	require.NotContains(t, r.Raw[strings.Index(r.Raw, `"key"`):strings.Index(r.Raw, `"secret"`)], secret)

	// The minting is audited (checked before any other call is audited under no account), under no account, with the key's id and never its secret.
	ev := s.lastAudit(natsx.AuditSubject(s.ns, ""), func(ev *auditv1.AuditEvent) bool { return ev.GetResourceId() == id })
	require.Equal(t, "keys.create_anonymous", ev.GetAction())
	require.Equal(t, "ok", ev.GetResult())
	require.Empty(t, ev.GetAccountId())
	require.Equal(t, "anonymous", ev.GetActor().GetType())
	raw, err := proto.Marshal(ev)
	require.NoError(t, err)
	require.NotContains(t, string(raw), secret)

	// Each call mints a new key.
	require.NotEqual(t, secret, s.mintAnonymous().Str("secret"))

	// Operators and gateways verify it; its capabilities are the type's.
	v := s.Verify(s.operator, secret)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, id, v.Str("key.id"))
	require.Equal(t, "ok", s.Verify(s.operator, secret, "capability", "ingest").Str("code"))
	require.Equal(t, "ok", s.Verify(s.operator, secret, "capability", "read").Str("code"))
	require.Equal(t, "insufficient_capability", s.Verify(s.operator, secret, "capability", "enrichment").Str("code"))

	// An account sees it as not_found, nowhere in its listings, and cannot touch it.
	token, _ := s.signUp("anon-viewer")
	require.Equal(t, "not_found", s.Verify(token, secret).Str("code"))
	s.Call("GET", "/v1/keys/"+id, token, nil).RequireError(t, 404, "not_found")
	s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}).RequireError(t, 404, "not_found")
	require.NotContains(t, s.Must(200, s.Call("GET", "/v1/keys", token, nil)).Raw, id)
	// It is no management credential.
	s.Call("GET", "/v1/keys", secret, nil).RequireError(t, 401, "unauthenticated")
	// And the management API never mints one.
	project := s.Project(token)
	s.Call("POST", "/v1/keys", token, map[string]any{"type": "anonymous", "project_id": project, "environment": "dev"}).RequireError(t, 400, "invalid_argument")
}

// TestAnonymousKeysTypedProfile: the typed profile mints gt_anon_ keys, which may not
// enrich, while its gt_dev_ keys carry every capability the profile names.
func TestAnonymousKeysTypedProfile(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "typed" })
	anon := s.mintAnonymous().Str("secret")
	require.True(t, strings.HasPrefix(anon, "gt_anon_"), "secret %q", anon)
	require.Equal(t, "insufficient_capability", s.Verify(s.operator, anon, "capability", "enrichment").Str("code"))
	require.Equal(t, "ok", s.Verify(s.operator, anon, "capability", "ingest").Str("code"))

	token, _ := s.signUp("typed-dev")
	_, dev := s.IngestKey(token, s.Project(token))
	require.True(t, strings.HasPrefix(dev, "gt_dev_"), "secret %q", dev)
	for _, c := range []string{"ingest", "read", "enrichment", "sourcemaps"} {
		require.Equal(t, "ok", s.Verify(s.operator, dev, "capability", c).Str("code"), c)
	}
	require.Equal(t, "not_found", s.Verify(token, anon).Str("code"))
}

// TestAnonymousKeysNeedAnonymousType: a profile with no anonymous type answers a clear 404.
func TestAnonymousKeysNeedAnonymousType(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "envkeys" })
	r := s.Call("POST", "/v1/anonymous-keys", "", map[string]any{})
	r.RequireError(t, 404, "not_found")
	require.Contains(t, r.Str("message"), "no anonymous key type")
	require.Empty(t, r.Str("secret"))
}

// TestAnonymousKeysLimitedPerIP: minting takes from a per-IP bucket of its own
// (LATCHKEY_LIMIT_ANONYMOUS): exactly the burst passes, then 429 tier ip, while the
// address's other calls are not held back by it.
func TestAnonymousKeysLimitedPerIP(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) {
		k.AnonymousLimit = ratelimit.Limit{PerSecond: 0.01, Burst: 3}
	})
	for range 3 {
		s.mintAnonymous()
	}
	r := s.Call("POST", "/v1/anonymous-keys", "", map[string]any{})
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "ip", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Empty(t, r.Str("secret"))
	s.signUp("after-anon-limit") // another call from the same address still passes
}

// lastAudit waits until the audit stream's last message on subject satisfies ok.
func (s *suite) lastAudit(subject string, ok func(*auditv1.AuditEvent) bool) *auditv1.AuditEvent {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL)
	require.NoError(s.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	ctx := context.Background()
	var got *auditv1.AuditEvent
	testutil.Eventually(s.t, 10*time.Second, func() bool {
		st, err := js.Stream(ctx, natsx.AuditStream(s.ns))
		if err != nil {
			return false
		}
		msg, err := st.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return false
		}
		ev := &auditv1.AuditEvent{}
		if proto.Unmarshal(msg.Data, ev) != nil {
			return false
		}
		got = ev
		return ok(ev)
	}, "an audit event on "+subject)
	return got
}
