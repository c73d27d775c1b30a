package api_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
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

// ingestedCount is how many messages the suite's ingest stream holds: to poll while they
// are being stored or deleted, which ingested cannot read through.
func (s *suite) ingestedCount(js jetstream.JetStream) uint64 {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, natsx.IngestStream(s.ns))
	require.NoError(s.t, err)
	info, err := st.Info(ctx)
	require.NoError(s.t, err)
	return info.State.Msgs
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
// second claim, by the same account or another, is already_claimed; the copies carry the
// claim's attempt id.
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
	// The claimer, whose answer may have been lost, is told where its key went; no one else is.
	require.Contains(t, r2.Message(), newID)
	require.Contains(t, r2.Message(), project)
	other := s.SignUp("late-claimer")
	r3 := s.claim(other.Token, anonSecret, s.Project(other.Token), "prd")
	r3.RequireError(t, 409, "already_claimed")
	require.NotContains(t, r3.Message(), newID)
	require.NotContains(t, r3.Message(), project)
	require.Equal(t, "not_found", s.Verify(other.Token, anonSecret).Str("code"))
	require.Len(t, s.ingested(js), 2)

	// The copies carry the claim's attempt, its key.claimed event's id, and the source
	// message's sequence in their Nats-Msg-Id.
	for _, m := range s.ingested(js) {
		require.True(t, strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), "claim-"+claimed.GetId()+"-"), m.Header.Get(jetstream.MsgIDHeader))
	}
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

// grpcClaim calls ClaimKey over gRPC with ctx, so that a test can cancel the call as a
// client that goes away does.
func (s *suite) grpcClaim(ctx context.Context, token, anonymousKey, project, env string) (*keysv1.ClaimKeyResponse, error) {
	s.t.Helper()
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(s.t, err)
	defer conn.Close()
	return keysv1.NewKeysServiceClient(conn).ClaimKey(auth.OutgoingBearer(ctx, token),
		&keysv1.ClaimKeyRequest{AnonymousKey: anonymousKey, ProjectId: project, Environment: env})
}

// publishRequests stores n one-request messages of anonymous key keyID on its traces
// subject, request ids req_0… .
func (s *suite) publishRequests(js jetstream.JetStream, keyID string, n int) {
	s.t.Helper()
	for i := range n {
		linktest.PublishAnon(s.t, js, s.ns, keyID, "traces", linktest.Request{RequestID: fmt.Sprint("req_", i), Payload: []byte{byte(i)}})
	}
}

// linkedTo is, per request id, how many times it is on the subjects of the account's
// project and environment.
func (s *suite) linkedTo(js jetstream.JetStream, accountID, project, env string) map[string]int {
	s.t.Helper()
	count := map[string]int{}
	for _, m := range linktest.Messages(s.t, js, natsx.IngestStream(s.ns), s.ns+".ingest."+accountID+"."+project+"."+env+".*") {
		for _, id := range m.Header.Values("Latchkey-Request-Id") {
			count[id]++
		}
	}
	return count
}

// requireEachOnce checks that each of the n requests publishRequests stored is in count,
// once.
func requireEachOnce(t *testing.T, count map[string]int, n int) {
	t.Helper()
	require.Len(t, count, n)
	for id, c := range count {
		require.Equal(t, 1, c, "request %s linked %d times", id, c)
	}
}

// requireUnclaimed checks that the anonymous key is still nobody's.
func (s *suite) requireUnclaimed(anonSecret string) {
	s.t.Helper()
	v := s.Verify(s.operator, anonSecret)
	require.Equal(s.t, "active", v.Str("key.status"))
	require.Empty(s.t, v.Str("key.account_id"))
}

// TestClaimKeyFailedLinkLeavesNothing: a claim whose linking fails midway (the ingest
// stream full: it refuses every message past 100 of 300) is 503 and leaves none of the
// key's data on the account's subjects; a retry into the same project, at once (within
// JetStream's duplicate window, which still holds the deleted copies' ids), links every
// request exactly once and counts them all.
func TestClaimKeyFailedLinkLeavesNothing(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	const n = 300
	s.publishRequests(js, anonID, n)
	owner := s.SignUp("full-stream-claimer")
	project := s.Project(owner.Token)

	linktest.LimitIngest(t, js, s.ns, 100, false)
	r := s.claim(owner.Token, anonSecret, project, "dev")
	r.RequireError(t, 503, "unavailable")
	require.Empty(t, r.Str("secret"))
	require.Empty(t, s.ingested(js), "a failed claim leaves no data")
	s.requireUnclaimed(anonSecret)

	linktest.LimitIngest(t, js, s.ns, -1, false)
	r = s.Must(200, s.claim(owner.Token, anonSecret, project, "dev"))
	require.Equal(t, float64(n), r.Get("claimed.messages_linked"))
	requireEachOnce(t, s.linkedTo(js, owner.AccountID, project, "dev"), n)
	require.Len(t, s.ingested(js), n, "nothing elsewhere")
}

// TestClaimKeyCancelledLeavesNothing: a claim whose client goes away after the linking,
// while the commit waits (held by a lock on the outbox, which the commit writes to), is
// not committed and deletes the copies it linked; a claim of the key into another
// project then succeeds with every request, and the first project holds none of them.
func TestClaimKeyCancelledLeavesNothing(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	const n = 50
	s.publishRequests(js, anonID, n)
	owner := s.SignUp("impatient-claimer")
	first, second := s.Project(owner.Token), s.Project(owner.Token)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	hold, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = hold.Rollback(context.Background()) }()
	_, err = hold.Exec(ctx, `LOCK TABLE keys.outbox IN EXCLUSIVE MODE`)
	require.NoError(t, err)

	callCtx, hangUp := context.WithCancel(ctx)
	defer hangUp()
	errs := make(chan error, 1)
	go func() {
		_, err := s.grpcClaim(callCtx, owner.Token, anonSecret, first, "dev")
		errs <- err
	}()
	testutil.Eventually(t, 10*time.Second, func() bool { return s.ingestedCount(js) == n }, "the claim to link")
	hangUp()
	select {
	case err := <-errs:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled claim did not return")
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return s.ingestedCount(js) == 0 }, "the cancelled claim to delete its copies")
	require.NoError(t, hold.Rollback(ctx))
	s.requireUnclaimed(anonSecret)

	r := s.Must(200, s.claim(owner.Token, anonSecret, second, "prd"))
	require.Equal(t, float64(n), r.Get("claimed.messages_linked"))
	requireEachOnce(t, s.linkedTo(js, owner.AccountID, second, "prd"), n)
	require.Empty(t, s.linkedTo(js, owner.AccountID, first, "dev"), "the data is in one project")
	require.Len(t, s.ingested(js), n)
}
