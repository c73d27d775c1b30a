package api_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
	"github.com/latchkey/latchkey/services/keys/internal/api"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// reporter signs leak reports as GitHub's secret scanning does: ECDSA P-256 over the
// SHA-256 of the raw body, base64 DER, the key named by its identifier.
type reporter struct {
	id  string
	key *ecdsa.PrivateKey
}

func newReporter(t testing.TB, id string) reporter {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return reporter{id: id, key: k}
}

// publicKeys is a LATCHKEY_SCANNING_PUBLIC_KEYS value naming the reporters' keys.
func publicKeys(t testing.TB, rps ...reporter) string {
	t.Helper()
	entries := []map[string]any{}
	for _, rp := range rps {
		der, err := x509.MarshalPKIXPublicKey(&rp.key.PublicKey)
		require.NoError(t, err)
		entries = append(entries, map[string]any{
			"key_identifier": rp.id, "key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), "is_current": true,
		})
	}
	b, err := json.Marshal(entries)
	require.NoError(t, err)
	return string(b)
}

// withScanning trusts the reporters' keys.
func withScanning(t testing.TB, rps ...reporter) func(*accounts.Config, *keys.Config) {
	v := publicKeys(t, rps...)
	return func(_ *accounts.Config, k *keys.Config) {
		require.NoError(t, k.ScanningPublicKeys.UnmarshalText([]byte(v)))
	}
}

// sign returns the headers of body signed by rp.
func (rp reporter) sign(t testing.TB, body string) []string {
	t.Helper()
	digest := sha256.Sum256([]byte(body))
	sig, err := ecdsa.SignASN1(rand.Reader, rp.key, digest[:])
	require.NoError(t, err)
	return []string{"Github-Public-Key-Identifier", rp.id, "Github-Public-Key-Signature", base64.StdEncoding.EncodeToString(sig)}
}

// report posts a leak report as is, with headers; never a 500.
func (s *suite) report(body string, headers ...string) testutil.Reply {
	s.t.Helper()
	r := s.Send("POST", s.Base+api.SecretScanningPath, "", body, headers...)
	require.NotEqual(s.t, http.StatusInternalServerError, r.Status, r.Raw)
	return r
}

// signedReport posts items signed by rp, requires a 200 and returns the feedback.
func (s *suite) signedReport(rp reporter, items ...map[string]any) []api.Feedback {
	s.t.Helper()
	body := reportOf(s.t, items...)
	r := s.Must(200, s.report(body, rp.sign(s.t, body)...))
	require.Equal(s.t, "application/json", r.Header.Get("Content-Type"))
	var fb []api.Feedback
	require.NoError(s.t, json.Unmarshal([]byte(r.Raw), &fb), r.Raw)
	return fb
}

func reportOf(t testing.TB, items ...map[string]any) string {
	t.Helper()
	if items == nil {
		items = []map[string]any{}
	}
	b, err := json.Marshal(items)
	require.NoError(t, err)
	return string(b)
}

// leak is one report item for token, found in a public file.
func leak(token string) map[string]any {
	return map[string]any{
		"token": token, "type": "latchkey_api_key",
		"url": "https://github.com/octo/demo/blob/0123abc/.env", "source": "content",
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// events counts the events of kind in the suite's stream that name keyID.
func (s *suite) eventsOf(js jetstream.JetStream, kind, keyID string) []*eventsv1.Event {
	s.t.Helper()
	var out []*eventsv1.Event
	for _, m := range linktest.Messages(s.t, js, natsx.EventsStream(s.ns), natsx.EventSubject(s.ns, kind)) {
		ev := &eventsv1.Event{}
		require.NoError(s.t, proto.Unmarshal(m.Data, ev))
		if ev.GetKeyExposed().GetKeyId() == keyID || ev.GetKeyRevoked().GetKeyId() == keyID {
			out = append(out, ev)
		}
	}
	return out
}

// TestSecretScanningRefusesWhatItCannotTrust: every report not signed by a configured key
// over its exact body is 401 in the envelope and changes nothing; a trusted report of the
// wrong shape is 400, one of too many tokens 413; GET is 405. The key named in the
// refused reports stays active.
func TestSecretScanningRefusesWhatItCannotTrust(t *testing.T) {
	github, other := newReporter(t, "github-1"), newReporter(t, "other")
	s := startSuite(t, withScanning(t, github, newReporter(t, "github-2")))
	token, _ := s.signUp("leaky")
	id, secret := s.IngestKey(token, s.Project(token))
	body := reportOf(t, leak(secret))
	good := github.sign(t, body)

	for name, headers := range map[string][]string{
		"unsigned":                  {},
		"identifier only":           good[:2],
		"signature only":            good[2:],
		"unknown key identifier":    {good[0], "github-3", good[2], good[3]},
		"identifier of other key":   {good[0], "github-2", good[2], good[3]},
		"signed by an unknown key":  other.sign(t, body),
		"signature of another body": append(good[:2:2], github.sign(t, body+" ")[2:]...),
		"signature not base64":      {good[0], good[1], good[2], "%%%"},
		"signature of garbage":      {good[0], good[1], good[2], base64.StdEncoding.EncodeToString([]byte("not DER"))},
		"signature far too long":    {good[0], good[1], good[2], strings.Repeat("A", 4000)},
		"identifier far too long":   {good[0], strings.Repeat("k", 4000), good[2], good[3]},
	} {
		s.report(body, headers...).RequireError(t, 401, apierr.Unauthenticated, name)
	}
	// Each header twice, even the same value: refused rather than guessed at.
	req, err := http.NewRequest("POST", s.Base+api.SecretScanningPath, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Add(good[0], good[1])
	req.Header.Add(good[0], good[1])
	req.Header.Add(good[2], good[3])
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, 401, resp.StatusCode)

	require.Equal(t, "active", s.Must(200, s.Call("GET", "/v1/keys/"+id, token, nil)).Str("key.status"), "nothing refused changed anything")
	require.Equal(t, "ok", s.Verify(s.operator, secret).Str("code"))

	// Signed, but not a report.
	for name, bad := range map[string]string{
		"empty body":         "",
		"not JSON":           "token=" + secret,
		"an object":          `{"token": "x"}`,
		"a string":           `"x"`,
		"an array of null":   `[null]`,
		"an array of arrays": `[[]]`,
		"a number token":     `[{"token": 5}]`,
		"no token":           `[{"type": "latchkey_api_key"}]`,
		"null token":         `[{"token": null}]`,
		"a number type":      `[{"token": "x", "type": 5}]`,
		"unterminated":       `[{"token": "x"}`,
		"something after":    `[{"token": "x"}] []`,
		"a trailing comma":   `[{"token": "x"},]`,
	} {
		s.report(bad, github.sign(t, bad)...).RequireError(t, 400, apierr.InvalidArgument, name)
	}

	// At most 1,000 tokens: 1,001 is refused whole, even with a live key among them.
	items := make([]map[string]any, 0, api.MaxReportTokens+1)
	for range api.MaxReportTokens {
		items = append(items, map[string]any{"token": "x"})
	}
	require.Len(t, s.signedReport(github, items...), api.MaxReportTokens)
	items = append(items, leak(secret))
	many := reportOf(t, items...)
	s.report(many, github.sign(t, many)...).RequireError(t, 413, apierr.PayloadTooLarge)
	require.Equal(t, "ok", s.Verify(s.operator, secret).Str("code"))

	// Over the REST edge's body limit: 413 before anything is read.
	huge := `[{"token": "` + strings.Repeat("x", server.DefaultMaxBodyBytes) + `"}]`
	s.report(huge, github.sign(t, huge)...).RequireError(t, 413, apierr.PayloadTooLarge)

	r := s.Send("GET", s.Base+api.SecretScanningPath, "", nil)
	require.Equal(t, 405, r.Status)
	require.Equal(t, "POST", r.Header.Get("Allow"))

	// An empty report is a report of nothing.
	require.Empty(t, s.signedReport(github))
}

// TestSecretScanningOffWithoutKeys: with no LATCHKEY_SCANNING_PUBLIC_KEYS the route
// answers 404, signed or not: nothing could be trusted.
func TestSecretScanningOffWithoutKeys(t *testing.T) {
	s := startSuite(t)
	github := newReporter(t, "github-1")
	body := reportOf(t, leak("lk_ing_x"))
	s.report(body, github.sign(t, body)...).RequireError(t, 404, apierr.NotFound)
	s.report(body).RequireError(t, 404, apierr.NotFound)
}

// TestSecretScanningReport: one report mixing the live keys of two accounts, an anonymous
// key, a key in rotation grace, a key revoked before, a key of the right shape never
// issued, garbage and a repeated token. The answer follows the report's order, naming each
// token by its SHA-256; every live key found is revoked at once, reason exposed, with its
// exposed_at, a key.exposed and a key.revoked event and an audit event by secret_scanning
// in its owner's log (none for an anonymous key: under no account); what was dead already
// is a true positive left as it was. Sent again, the report answers the same and changes
// and emits nothing.
func TestSecretScanningReport(t *testing.T) {
	github := newReporter(t, "github-1")
	s := startSuite(t, withScanning(t, github))
	_, js := linktest.Connect(t)

	tokenA, accountA := s.signUp("leaky-a")
	tokenB, accountB := s.signUp("leaky-b")
	projectA := s.Project(tokenA)
	liveA, secretA := s.IngestKey(tokenA, projectA)
	liveB, secretB := s.IngestKey(tokenB, s.Project(tokenB))
	rotated, secretRotated := s.IngestKey(tokenA, projectA)
	s.Must(200, s.Call("POST", "/v1/keys/"+rotated+":rotate", tokenA, map[string]any{}))
	dead, secretDead := s.IngestKey(tokenA, projectA)
	s.Must(200, s.Call("POST", "/v1/keys/"+dead+":revoke", tokenA, map[string]any{"reason": "no longer used"}))
	anon := s.mintAnonymous()
	anonID, secretAnon := anon.Str("key.id"), anon.Str("secret")
	neverIssued, err := keyformat.Default().Generate("ingest")
	require.NoError(t, err)

	tokens := []string{secretA, "garbage", secretB, secretRotated, secretDead, secretAnon, neverIssued, secretA, ""}
	want := []string{"true_positive", "false_positive", "true_positive", "true_positive", "true_positive", "true_positive", "false_positive", "true_positive", "false_positive"}
	items := make([]map[string]any, len(tokens))
	for i, tok := range tokens {
		items[i] = leak(tok)
	}
	items[1]["type"] = "another_type"

	before := time.Now()
	fb := s.signedReport(github, items...)
	require.Len(t, fb, len(tokens))
	for i, tok := range tokens {
		require.Equal(t, sha256Hex(tok), fb[i].TokenHash, "token %d", i)
		require.Equal(t, items[i]["type"], fb[i].TokenType, "token %d", i)
		require.Equal(t, want[i], fb[i].Label, "token %d", i)
	}

	// Revoked at once, reason exposed, with exposed_at; the gateway's verdict follows.
	for _, k := range []struct{ token, id, secret string }{{tokenA, liveA, secretA}, {tokenB, liveB, secretB}, {tokenA, rotated, secretRotated}} {
		got := s.Must(200, s.Call("GET", "/v1/keys/"+k.id, k.token, nil))
		require.Equal(t, "revoked", got.Str("key.status"), k.id)
		require.Equal(t, "exposed", got.Str("key.revoke_reason"))
		exposedAt, err := time.Parse(time.RFC3339Nano, got.Str("key.exposed_at"))
		require.NoError(t, err)
		require.WithinRange(t, exposedAt, before.Add(-time.Second), time.Now().Add(time.Second))
		require.Equal(t, got.Str("key.revoked_at"), got.Str("key.exposed_at"))
		require.Equal(t, "revoked", s.Verify(s.operator, k.secret).Str("code"))
	}
	require.Equal(t, "revoked", s.Verify(s.operator, secretAnon).Str("code"), "the anonymous key")
	// Revoked before the report: left as it was, never marked exposed.
	got := s.Must(200, s.Call("GET", "/v1/keys/"+dead, tokenA, nil))
	require.Equal(t, "no longer used", got.Str("key.revoke_reason"))
	require.Nil(t, got.Get("key.exposed_at"))

	// Events: key.exposed (where, from the report) and key.revoked, once per key.
	exposedIDs := []string{liveA, liveB, rotated, anonID}
	for _, id := range exposedIDs {
		ev := s.findEvent(js, "key.exposed", func(ev *eventsv1.Event) bool { return ev.GetKeyExposed().GetKeyId() == id })
		require.Equal(t, "https://github.com/octo/demo/blob/0123abc/.env", ev.GetKeyExposed().GetUrl())
		require.Equal(t, "content", ev.GetKeyExposed().GetSource())
		require.Len(t, ev.GetKeyExposed().GetKeyHash(), 32)
		rev := s.findEvent(js, "key.revoked", func(ev *eventsv1.Event) bool { return ev.GetKeyRevoked().GetKeyId() == id })
		require.Equal(t, "exposed", rev.GetKeyRevoked().GetReason())
	}
	require.Empty(t, s.eventsOf(js, "key.exposed", dead))

	// Audit: in each owner's log, by secret_scanning; the anonymous key's under no account.
	for _, c := range []struct{ account, id string }{{accountA, liveA}, {accountB, liveB}, {accountA, rotated}, {"", anonID}} {
		ev, raw := s.findAudit(js, c.account, func(ev *auditv1.AuditEvent) bool {
			return ev.GetAction() == "keys.exposed" && ev.GetResourceId() == c.id
		})
		require.Equal(t, "secret_scanning", ev.GetActor().GetType())
		require.Equal(t, "key", ev.GetResourceType())
		require.Equal(t, "ok", ev.GetResult())
		require.Equal(t, "revoke", ev.GetDetails()["on_exposed"])
		require.Equal(t, "https://github.com/octo/demo/blob/0123abc/.env", ev.GetDetails()["url"])
		require.Equal(t, c.account, ev.GetAccountId())
		for _, secret := range tokens[:7] {
			if secret != "garbage" && secret != "" {
				require.NotContains(t, string(raw), secret)
			}
		}
	}

	// The same report again: the same answer; nothing revoked twice, no event twice.
	again := s.signedReport(github, items...)
	require.Equal(t, fb, again)
	// A change after the second report: once its event is in the stream, anything the
	// second report had emitted would be too (the outbox keeps order).
	marker, _ := s.IngestKey(tokenA, projectA)
	s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == marker })
	for _, id := range exposedIDs {
		require.Len(t, s.eventsOf(js, "key.exposed", id), 1, id)
		require.Len(t, s.eventsOf(js, "key.revoked", id), 1, id)
	}
	audits := 0
	for _, m := range linktest.Messages(t, js, natsx.AuditStream(s.ns), natsx.AuditSubject(s.ns, accountA)) {
		ev := &auditv1.AuditEvent{}
		require.NoError(t, proto.Unmarshal(m.Data, ev))
		if ev.GetAction() == "keys.exposed" {
			audits++
		}
	}
	require.Equal(t, 2, audits, "one audit event per exposed key of account A")
}

// TestSecretScanningNotify: under a profile whose ingest type says on_exposed "notify", a
// reported key keeps working: exposed_at is set, key.exposed and the audit event are
// written (on_exposed: notify), no key.revoked; reported again, nothing new. The account
// type, left at the default, is revoked.
func TestSecretScanningNotify(t *testing.T) {
	profile, err := keyformat.Default().Profile(func(t *keyformat.Type) {
		if t.Name == "ingest" {
			t.OnExposed = keyformat.OnExposedNotify
		}
	})
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "notify.json")
	require.NoError(t, os.WriteFile(path, profile, 0o600))
	github := newReporter(t, "github-1")
	s := startSuite(t, withScanning(t, github), func(_ *accounts.Config, k *keys.Config) { k.KeyProfile = path })
	_, js := linktest.Connect(t)

	steppedUp, accountID, _ := s.proAccount("notified")
	id, secret := s.IngestKey(steppedUp, s.Project(steppedUp))
	acct := s.Must(200, s.Call("POST", "/v1/keys", steppedUp, map[string]any{"type": "account", "name": "ci"}))
	acctID, acctSecret := acct.Str("key.id"), acct.Str("secret")

	fb := s.signedReport(github, leak(secret), leak(acctSecret))
	require.Equal(t, []string{"true_positive", "true_positive"}, []string{fb[0].Label, fb[1].Label})

	got := s.Must(200, s.Call("GET", "/v1/keys/"+id, steppedUp, nil))
	require.Equal(t, "active", got.Str("key.status"), "notify: the key keeps working")
	require.NotEmpty(t, got.Str("key.exposed_at"))
	require.Equal(t, "ok", s.Verify(s.operator, secret).Str("code"))
	s.findEvent(js, "key.exposed", func(ev *eventsv1.Event) bool { return ev.GetKeyExposed().GetKeyId() == id })
	ev, _ := s.findAudit(js, accountID, func(ev *auditv1.AuditEvent) bool {
		return ev.GetAction() == "keys.exposed" && ev.GetResourceId() == id
	})
	require.Equal(t, "notify", ev.GetDetails()["on_exposed"])
	require.Equal(t, "secret_scanning", ev.GetActor().GetType())

	require.Equal(t, "revoked", s.Verify(s.operator, acctSecret).Str("code"), "the account type revokes")
	s.findEvent(js, "key.revoked", func(ev *eventsv1.Event) bool { return ev.GetKeyRevoked().GetKeyId() == acctID })

	// Again: still a true positive, still working, and nothing emitted twice.
	again := s.signedReport(github, leak(secret))
	require.Equal(t, "true_positive", again[0].Label)
	require.Equal(t, got.Str("key.exposed_at"), s.Must(200, s.Call("GET", "/v1/keys/"+id, steppedUp, nil)).Str("key.exposed_at"), "exposed_at is set once")
	marker, _ := s.IngestKey(steppedUp, s.Project(steppedUp))
	s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == marker })
	require.Len(t, s.eventsOf(js, "key.exposed", id), 1)
	require.Empty(t, s.eventsOf(js, "key.revoked", id))
}

// TestSecretScanningConcurrentReports: the same report sent several times at once exposes
// the key once: one key.exposed, one key.revoked, one audit event.
func TestSecretScanningConcurrentReports(t *testing.T) {
	github := newReporter(t, "github-1")
	s := startSuite(t, withScanning(t, github))
	_, js := linktest.Connect(t)
	token, accountID := s.signUp("raced")
	project := s.Project(token)
	id, secret := s.IngestKey(token, project)
	body := reportOf(t, leak(secret))
	headers := github.sign(t, body)

	const n = 8
	statuses := make(chan int, n)
	for range n {
		go func() {
			req, err := http.NewRequest("POST", s.Base+api.SecretScanningPath, strings.NewReader(body))
			if err != nil {
				statuses <- 0
				return
			}
			req.Header.Set(headers[0], headers[1])
			req.Header.Set(headers[2], headers[3])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				statuses <- 0
				return
			}
			_ = resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for range n {
		require.Equal(t, 200, <-statuses)
	}
	marker, _ := s.IngestKey(token, project)
	s.findEvent(js, "key.created", func(ev *eventsv1.Event) bool { return ev.GetKeyCreated().GetKeyId() == marker })
	require.Len(t, s.eventsOf(js, "key.exposed", id), 1)
	require.Len(t, s.eventsOf(js, "key.revoked", id), 1)
	audits := 0
	for _, m := range linktest.Messages(t, js, natsx.AuditStream(s.ns), natsx.AuditSubject(s.ns, accountID)) {
		ev := &auditv1.AuditEvent{}
		require.NoError(t, proto.Unmarshal(m.Data, ev))
		if ev.GetAction() == "keys.exposed" {
			audits++
		}
	}
	require.Equal(t, 1, audits)
}
