package api_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/link"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// claim calls POST /v1/keys:claim.
func (s *suite) claim(token, anonymousKey, project, env string) testutil.Reply {
	s.t.Helper()
	return s.Call("POST", "/v1/keys:claim", token, map[string]any{
		"anonymous_key": anonymousKey, "project_id": project, "environment": env,
	})
}

// ingestStreams makes the two ingest streams in the suite's namespace, as a gateway would,
// and returns a JetStream handle.
func (s *suite) ingestStreams() jetstream.JetStream {
	s.t.Helper()
	_, js := linktest.Connect(s.t)
	linktest.Streams(s.t, js, s.ns, 48*time.Hour)
	return js
}

// ingested is every message of the suite's ingest stream.
func (s *suite) ingested(js jetstream.JetStream) []linktest.Stored {
	s.t.Helper()
	return linktest.Messages(s.t, js, natsx.IngestStream(s.ns), natsx.IngestSubjects(s.ns))
}

// findEvent waits until the events stream holds an event of kind that satisfies ok.
func (s *suite) findEvent(js jetstream.JetStream, kind string, ok func(*eventsv1.Event) bool) *eventsv1.Event {
	s.t.Helper()
	var got *eventsv1.Event
	testutil.Eventually(s.t, 10*time.Second, func() bool {
		for _, m := range linktest.Messages(s.t, js, natsx.EventsStream(s.ns), natsx.EventSubject(s.ns, kind)) {
			ev := &eventsv1.Event{}
			if proto.Unmarshal(m.Data, ev) == nil && ok(ev) {
				got = ev
				return true
			}
		}
		return false
	}, "a "+kind+" event")
	return got
}

// findAudit waits until the audit stream holds an event of the account that satisfies ok.
func (s *suite) findAudit(js jetstream.JetStream, accountID string, ok func(*auditv1.AuditEvent) bool) (*auditv1.AuditEvent, []byte) {
	s.t.Helper()
	var (
		got *auditv1.AuditEvent
		raw []byte
	)
	testutil.Eventually(s.t, 10*time.Second, func() bool {
		for _, m := range linktest.Messages(s.t, js, natsx.AuditStream(s.ns), natsx.AuditSubject(s.ns, accountID)) {
			ev := &auditv1.AuditEvent{}
			if proto.Unmarshal(m.Data, ev) == nil && ok(ev) {
				got, raw = ev, m.Data
				return true
			}
		}
		return false
	}, "an audit event of "+accountID)
	return got, raw
}

// TestClaimKey: a session claims an anonymous key for a project and environment. Every
// request the key sent is linked to the account's subject with its headers and payload
// (messages_linked counts requests, a merged message counting twice), and nothing of
// another anonymous key; the new ingest key is shown once; the anonymous key becomes the
// account's, in grace for the type's claim_grace with the new key as its successor, and
// both verify; key.created, key.claimed and the keys.claim audit event are written; a
// second claim, by the same account or another, is already_claimed; and linking again
// (what a retried claim does) stores nothing twice.
func TestClaimKey(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	otherAnon := s.mintAnonymous().Str("key.id")
	linktest.PublishAnon(t, js, s.ns, anonID, "traces", linktest.Request{RequestID: "req_a", Payload: []byte("a")})
	linktest.PublishAnon(t, js, s.ns, otherAnon, "traces", linktest.Request{RequestID: "req_x", Payload: []byte("x")})
	linktest.PublishAnon(t, js, s.ns, anonID, "metrics",
		linktest.Request{RequestID: "req_b", Payload: []byte("bb")}, linktest.Request{RequestID: "req_c", Payload: []byte("ccc")})

	owner := s.SignUp("claimer")
	project := s.Project(owner.Token)
	before := time.Now()
	r := s.Must(200, s.claim(owner.Token, anonSecret, project, "dev"))
	after := time.Now()

	// The answer: the new key, its secret, and what the claim did.
	newID, newSecret := r.Str("key.id"), r.Str("secret")
	require.True(t, strings.HasPrefix(newSecret, "lk_ing_"), "secret %q", newSecret)
	require.Equal(t, "ingest", r.Str("key.type"))
	require.Equal(t, owner.AccountID, r.Str("key.account_id"))
	require.Equal(t, project, r.Str("key.project_id"))
	require.Equal(t, "dev", r.Str("key.environment"))
	require.Equal(t, "active", r.Str("key.status"))
	require.Equal(t, owner.UserID, r.Str("key.created_by"))
	require.Equal(t, []any{"ingest"}, r.Get("key.capabilities"))
	require.Equal(t, anonID, r.Str("claimed.anonymous_key_id"))
	require.Equal(t, float64(3), r.Get("claimed.messages_linked"), "a JSON number: one request, then two merged into one message")
	graceUntil, err := time.Parse(time.RFC3339Nano, r.Str("claimed.grace_until"))
	require.NoError(t, err)
	claimGrace := 30 * 24 * time.Hour
	require.WithinRange(t, graceUntil, before.Add(claimGrace-time.Second), after.Add(claimGrace+time.Second))

	// The claim is audited in the account's log, with the anonymous key and the count,
	// never a secret.
	ev, raw := s.findAudit(js, owner.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.claim" })
	require.Equal(t, "ok", ev.GetResult())
	require.Equal(t, "key", ev.GetResourceType())
	require.Equal(t, newID, ev.GetResourceId())
	require.Equal(t, "user", ev.GetActor().GetType())
	require.Equal(t, anonID, ev.GetDetails()["anonymous_key_id"])
	require.Equal(t, "3", ev.GetDetails()["messages_linked"])
	require.NotContains(t, string(raw), anonSecret)
	require.NotContains(t, string(raw), newSecret)

	// Exactly the key's messages are on the account's subjects, as they were sent.
	got := s.ingested(js)
	require.Len(t, got, 2)
	subject := func(sig string) string {
		sub, err := natsx.IngestSubject(s.ns, owner.AccountID, project, "dev", sig)
		require.NoError(t, err)
		return sub
	}
	require.Equal(t, subject("traces"), got[0].Subject)
	require.Equal(t, "a", string(got[0].Data))
	require.Equal(t, []string{anonID}, got[0].Header.Values("Latchkey-Key-Id"))
	require.Equal(t, []string{"req_a"}, got[0].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"1"}, got[0].Header.Values("Latchkey-Request-Size"))
	require.Equal(t, subject("metrics"), got[1].Subject)
	require.Equal(t, "bbccc", string(got[1].Data))
	require.Equal(t, []string{anonID, anonID}, got[1].Header.Values("Latchkey-Key-Id"))
	require.Equal(t, []string{"req_b", "req_c"}, got[1].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"2", "3"}, got[1].Header.Values("Latchkey-Request-Size"))

	// Events: the new key is created, and the anonymous key claimed (gateways drop it).
	claimed := s.findEvent(js, "key.claimed", func(ev *eventsv1.Event) bool { return ev.GetKeyClaimed().GetAnonymousKeyId() == anonID })
	require.Equal(t, owner.AccountID, claimed.GetAccountId())
	require.Equal(t, newID, claimed.GetKeyClaimed().GetNewKeyId())
	require.Len(t, claimed.GetKeyClaimed().GetAnonymousKeyHash(), 32)
	require.True(t, claimed.GetKeyClaimed().GetGraceUntil().AsTime().Equal(graceUntil))
	created := s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == newID })
	require.Equal(t, project, created.GetKeyCreated().GetProjectId())
	require.Equal(t, "dev", created.GetKeyCreated().GetEnvironment())

	// The anonymous key is now the account's: in grace, succeeded by the new key, listed.
	a := s.Must(200, s.Call("GET", "/v1/keys/"+anonID, owner.Token, nil))
	require.Equal(t, "grace", a.Str("key.status"))
	require.Equal(t, owner.AccountID, a.Str("key.account_id"))
	require.Equal(t, project, a.Str("key.project_id"))
	require.Equal(t, "dev", a.Str("key.environment"))
	require.Equal(t, newID, a.Str("key.rotated_to_id"))
	require.Equal(t, r.Str("claimed.grace_until"), a.Str("key.grace_until"))
	list := s.Must(200, s.Call("GET", "/v1/keys", owner.Token, nil)).Raw
	require.Contains(t, list, anonID)
	require.Contains(t, list, newID)
	// Both keys work, for the account's session as for gateways.
	v := s.Verify(owner.Token, anonSecret)
	require.Equal(t, "ok", v.Str("code"))
	require.Equal(t, "grace", v.Str("key.status"))
	require.Equal(t, "ok", s.Verify(s.operator, anonSecret).Str("code"))
	require.Equal(t, "ok", s.Verify(owner.Token, newSecret).Str("code"))

	// A second claim, by anyone, is refused and changes nothing.
	r2 := s.claim(owner.Token, anonSecret, project, "dev")
	r2.RequireError(t, 409, "already_claimed")
	require.Empty(t, r2.Str("secret"))
	other := s.SignUp("late-claimer")
	s.claim(other.Token, anonSecret, s.Project(other.Token), "prd").RequireError(t, 409, "already_claimed")
	require.Equal(t, "not_found", s.Verify(other.Token, anonSecret).Str("code"))
	require.Len(t, s.ingested(js), 2)

	// Linking the key to the account again, as a claim retried after a failure would,
	// stores nothing twice.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := link.New(js, s.ns).Link(ctx, anonID, link.Target{AccountID: owner.AccountID, ProjectID: project, Environment: "dev"})
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 2, Requests: 3, Duplicates: 2}, res, "nothing new to store")
	require.Len(t, s.ingested(js), 2)
}

// TestClaimKeyRefusals: only a session claims; a missing or malformed key is 400, a key that
// is no anonymous one (the caller's own, another account's, none at all) 404 with the same
// message, a revoked one 409; the project and environment are checked as CreateKey checks
// them. None of this claims the key, which a proper claim then does.
func TestClaimKeyRefusals(t *testing.T) {
	s := startSuite(t)
	s.ingestStreams()
	owner := s.SignUp("refused-claimer")
	project := s.Project(owner.Token)
	anonSecret := s.mintAnonymous().Str("secret")

	// Who.
	s.claim("", anonSecret, project, "dev").RequireError(t, 401, "unauthenticated")
	proToken, _, _ := s.proAccount("claim-with-account-key")
	proProject := s.Project(proToken)
	accountKey := s.Must(200, s.Call("POST", "/v1/keys", proToken, map[string]any{"type": "account"})).Str("secret")
	r := s.claim(accountKey, anonSecret, proProject, "dev")
	r.RequireError(t, 403, "permission_denied")
	require.Contains(t, r.Message(), "session")

	// What.
	s.claim(owner.Token, "", project, "dev").RequireError(t, 400, "invalid_argument")
	s.claim(owner.Token, "not-a-key", project, "dev").RequireError(t, 400, "invalid_argument")
	broken := anonSecret[:len(anonSecret)-1] + map[bool]string{true: "B", false: "A"}[strings.HasSuffix(anonSecret, "A")]
	r = s.claim(owner.Token, broken, project, "dev")
	r.RequireError(t, 400, "invalid_argument")
	require.NotContains(t, r.Raw, broken)
	_, own := s.IngestKey(owner.Token, project)
	notFound := s.claim(owner.Token, own, project, "dev")
	notFound.RequireError(t, 404, "not_found")
	stranger := s.SignUp("stranger")
	_, foreign := s.IngestKey(stranger.Token, s.Project(stranger.Token))
	unknown, err := keyformat.Default().Generate("anonymous")
	require.NoError(t, err)
	for _, k := range []string{foreign, unknown} {
		r := s.claim(owner.Token, k, project, "dev")
		r.RequireError(t, 404, "not_found")
		require.Equal(t, notFound.Message(), r.Message(), "nothing tells these apart")
	}
	revoked := s.mintAnonymous()
	s.revokeInDatabase(revoked.Str("key.id"))
	r = s.claim(owner.Token, revoked.Str("secret"), project, "dev")
	r.RequireError(t, 409, "conflict")
	require.Contains(t, r.Message(), "revoked")

	// Where.
	s.claim(owner.Token, anonSecret, "", "dev").RequireError(t, 400, "invalid_argument")
	s.claim(owner.Token, anonSecret, "prj_bad", "dev").RequireError(t, 400, "invalid_argument")
	s.claim(owner.Token, anonSecret, project, "").RequireError(t, 400, "invalid_argument")
	s.claim(owner.Token, anonSecret, project, "qa").RequireError(t, 400, "invalid_argument")
	s.claim(owner.Token, anonSecret, s.Project(stranger.Token), "dev").RequireError(t, 404, "not_found")

	// Nothing was claimed.
	require.Equal(t, "not_found", s.Verify(owner.Token, anonSecret).Str("code"))
	v := s.Verify(s.operator, anonSecret)
	require.Equal(t, "active", v.Str("key.status"))
	require.Empty(t, v.Str("key.account_id"))
	r = s.Must(200, s.claim(owner.Token, anonSecret, project, "dev"))
	require.Equal(t, float64(0), r.Get("claimed.messages_linked"), "no data sent, none linked")
}

// revokeInDatabase revokes a key as no API call can yet revoke an anonymous one (leaked-key
// reports will).
func (s *suite) revokeInDatabase(id string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(s.t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	tag, err := conn.Exec(ctx, `UPDATE keys.keys SET revoked_at = now(), revoke_reason = 'test' WHERE id = $1`, id)
	require.NoError(s.t, err)
	require.EqualValues(s.t, 1, tag.RowsAffected())
}

// TestClaimKeyLinkFailure: when the data cannot be linked (here the ingest stream is
// missing) the claim is 503 with Retry-After, shows no secret and commits nothing; once the
// stream is back the same claim succeeds and links everything once.
func TestClaimKeyLinkFailure(t *testing.T) {
	s := startSuite(t)
	_, js := linktest.Connect(t)
	linktest.AnonStream(t, js, s.ns, 48*time.Hour)
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	for _, id := range []string{"req_1", "req_2"} {
		linktest.PublishAnon(t, js, s.ns, anonID, "logs", linktest.Request{RequestID: id, Payload: []byte(id)})
	}
	owner := s.SignUp("unlucky-claimer")
	project := s.Project(owner.Token)

	r := s.claim(owner.Token, anonSecret, project, "prd")
	r.RequireError(t, 503, "unavailable")
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Empty(t, r.Str("secret"))
	require.NotContains(t, r.Raw, "lk_ing_")

	// Nothing was committed: the key is nobody's, and the account has no key.
	require.Equal(t, "not_found", s.Verify(owner.Token, anonSecret).Str("code"))
	v := s.Verify(s.operator, anonSecret)
	require.Equal(t, "active", v.Str("key.status"))
	require.Empty(t, v.Str("key.account_id"))
	require.Empty(t, s.Must(200, s.Call("GET", "/v1/keys", owner.Token, nil)).Get("keys"))

	linktest.IngestStream(t, js, s.ns)
	r = s.Must(200, s.claim(owner.Token, anonSecret, project, "prd"))
	require.Equal(t, float64(2), r.Get("claimed.messages_linked"))
	require.Len(t, s.ingested(js), 2)
}

// TestClaimKeyConcurrent: of several accounts claiming one anonymous key at once exactly
// one wins; the others are already_claimed, and the data is linked once, to the winner.
func TestClaimKeyConcurrent(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	for _, id := range []string{"req_1", "req_2", "req_3"} {
		linktest.PublishAnon(t, js, s.ns, anonID, "traces", linktest.Request{RequestID: id, Payload: []byte(id)})
	}
	const n = 6
	type claimer struct {
		account testutil.Account
		project string
	}
	claimers := make([]claimer, n)
	for i := range claimers {
		a := s.SignUp("racer")
		claimers[i] = claimer{a, s.Project(a.Token)}
	}
	replies := make([]testutil.Reply, n)
	var wg sync.WaitGroup
	for i, c := range claimers {
		wg.Go(func() { replies[i] = s.claim(c.account.Token, anonSecret, c.project, "dev") })
	}
	wg.Wait()
	winner := -1
	for i, r := range replies {
		if r.Status == 200 {
			require.Equal(t, -1, winner, "two claims won: %s", r.Raw)
			winner = i
			continue
		}
		r.RequireError(t, 409, "already_claimed")
	}
	require.NotEqual(t, -1, winner, "no claim won")
	require.Equal(t, float64(3), replies[winner].Get("claimed.messages_linked"))
	got := s.ingested(js)
	require.Len(t, got, 3)
	w := claimers[winner]
	for _, m := range got {
		require.True(t, strings.HasPrefix(m.Subject, s.ns+".ingest."+w.account.AccountID+"."+w.project+".dev."), m.Subject)
	}
	require.Equal(t, "ok", s.Verify(w.account.Token, anonSecret).Str("code"))
}

// TestClaimKeyGraceEnds: under a profile whose anonymous type has a claim_grace of 2s the
// claimed key keeps working until grace_until and is expired after, while the new key
// goes on.
func TestClaimKeyGraceEnds(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "short-claim-grace.json")
	require.NoError(t, os.WriteFile(profile, []byte(`{"types": [
		{"name": "anonymous", "prefix": "cgt_anon_", "encoding": "base62", "random_bytes": 32, "checksum": true,
		 "capabilities": ["ingest"], "scope": "environment", "data_ttl": "48h", "anonymous": true, "claim_grace": "2s"},
		{"name": "ingest", "prefix": "cgt_ing_", "encoding": "base62", "random_bytes": 32, "checksum": true,
		 "capabilities": ["ingest"], "scope": "environment", "rotation_grace": "24h", "mintable": true},
		{"name": "account", "prefix": "cgt_acct_", "encoding": "base62", "random_bytes": 32, "checksum": true,
		 "capabilities": ["keys:read", "keys:write"], "scope": "account", "mintable": true}
	]}`), 0o600))
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = profile })
	s.ingestStreams()
	owner := s.SignUp("grace-claimer")
	project := s.Project(owner.Token)
	anonSecret := s.mintAnonymous().Str("secret")
	require.True(t, strings.HasPrefix(anonSecret, "cgt_anon_"), anonSecret)

	before := time.Now()
	r := s.Must(200, s.claim(owner.Token, anonSecret, project, "dev"))
	after := time.Now()
	newSecret := r.Str("secret")
	require.True(t, strings.HasPrefix(newSecret, "cgt_ing_"), newSecret)
	graceUntil, err := time.Parse(time.RFC3339Nano, r.Str("claimed.grace_until"))
	require.NoError(t, err)
	require.WithinRange(t, graceUntil, before.Add(2*time.Second-time.Millisecond), after.Add(2*time.Second))

	testutil.Eventually(t, 10*time.Second, func() bool {
		return s.Verify(s.operator, anonSecret).Str("code") == "expired"
	}, "the claimed key's grace to end")
	require.False(t, time.Now().Before(graceUntil), "expired before grace_until")
	v := s.Verify(owner.Token, anonSecret)
	require.Equal(t, "expired", v.Str("code"))
	require.Equal(t, "expired", v.Str("key.status"))
	require.Equal(t, "ok", s.Verify(owner.Token, newSecret).Str("code"))
	s.claim(owner.Token, anonSecret, project, "dev").RequireError(t, 409, "already_claimed")
}

// TestClaimKeyTypedProfile: under the typed profile a claimed gt_anon_ key becomes a gt_dev_
// key with every capability the profile's ingest type names.
func TestClaimKeyTypedProfile(t *testing.T) {
	s := startSuite(t, func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = "typed" })
	s.ingestStreams()
	owner := s.SignUp("typed-claimer")
	project := s.Project(owner.Token)
	anonSecret := s.mintAnonymous().Str("secret")
	r := s.Must(200, s.claim(owner.Token, anonSecret, project, "stg"))
	require.True(t, strings.HasPrefix(r.Str("secret"), "gt_dev_"), r.Str("secret"))
	require.Equal(t, []any{"ingest", "read", "enrichment", "sourcemaps"}, r.Get("key.capabilities"))
	require.Equal(t, "ok", s.Verify(owner.Token, r.Str("secret"), "capability", "enrichment").Str("code"))
	require.Equal(t, "ok", s.Verify(owner.Token, anonSecret).Str("code"))
}

// TestClaimKeyIdempotent: the new secret is shown once, so a client that lost the answer
// retries with the same Idempotency-Key and gets the same answer, not already_claimed.
func TestClaimKeyIdempotent(t *testing.T) {
	s := startSuite(t)
	s.ingestStreams()
	owner := s.SignUp("retrying-claimer")
	project := s.Project(owner.Token)
	anonSecret := s.mintAnonymous().Str("secret")
	body := map[string]any{"anonymous_key": anonSecret, "project_id": project, "environment": "dev"}
	first := s.Must(200, s.Call("POST", "/v1/keys:claim", owner.Token, body, "Idempotency-Key", "claim-1"))
	again := s.Must(200, s.Call("POST", "/v1/keys:claim", owner.Token, body, "Idempotency-Key", "claim-1"))
	require.Equal(t, first.Str("secret"), again.Str("secret"))
	require.Equal(t, first.Str("key.id"), again.Str("key.id"))
	s.Call("POST", "/v1/keys:claim", owner.Token, body, "Idempotency-Key", "claim-2").RequireError(t, 409, "already_claimed")
}
