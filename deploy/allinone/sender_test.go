package allinone

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	otellog "go.opentelemetry.io/otel/log"
	"google.golang.org/grpc/codes"

	// The package's own name is taken here by gateway_faults_test.go's sender function.
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	sdk "github.com/latchkey/latchkey/pkg/sender"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// protocols are the sender's transports, each with the suite's endpoint for it.
func (s *suite) senderProtocols() map[sdk.Protocol]string {
	return map[sdk.Protocol]string{sdk.HTTPProtobuf: s.ingest, sdk.GRPC: "http://" + s.otlpGRPC}
}

// clearSenderEnv unsets, for the test, every variable from which a sender takes its
// profile or key, and gives its mint locks a cache directory of the test's own.
func clearSenderEnv(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(sdk.EnvProfile, "")
	for _, v := range keyVariables(t) {
		t.Setenv(v, "")
	}
}

// startSender starts a sender against the suite; the test shuts it down.
func (s *suite) startSender(t *testing.T, o sdk.Options) *sdk.Sender {
	t.Helper()
	if o.APIURL == "" {
		o.APIURL = s.api
	}
	snd, err := sdk.Start(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = snd.Shutdown(context.Background()) })
	return snd
}

// sendAll records a span, a metric point and a log record named after what and exports
// them at once.
func sendAll(snd *sdk.Sender, what string) error {
	ctx := context.Background()
	_, span := snd.TracerProvider().Tracer("sender-test").Start(ctx, what)
	span.End()
	c, err := snd.MeterProvider().Meter("sender-test").Int64Counter(what)
	if err != nil {
		return err
	}
	c.Add(ctx, 1)
	var r otellog.Record
	r.SetBody(attribute.StringValue(what))
	snd.LoggerProvider().Logger("sender-test").Emit(ctx, r)
	return snd.ForceFlush(ctx)
}

// anonymousKeys counts the anonymous keys the suite's keys service has minted.
func (s *suite) anonymousKeys(t *testing.T) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM keys.keys WHERE type = 'anonymous'`).Scan(&n))
	return n
}

// keyID is the id of a key, as the operator's verification names it.
func (s *suite) keyID(t *testing.T, secret string) string {
	t.Helper()
	return s.Must(http.StatusOK, s.Call("POST", "/v1/keys:verify", s.operator, map[string]any{"key": secret})).Str("key.id")
}

// requireSignals requires at least one stored message of every signal on prefix+<signal>
// in stream, and returns how many there are of each.
func (s *suite) requireSignals(t *testing.T, stream, prefix string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, sig := range []string{"traces", "metrics", "logs"} {
		counts[sig] = len(s.storedIn(stream, prefix+sig))
		require.Positive(t, counts[sig], "%s on %s%s", sig, prefix, sig)
	}
	return counts
}

// TestSenderAnonymousMode: with no key, the first run mints an anonymous key and stores it
// (0600); its traces, metrics and logs land on the key's own subject of the anonymous
// stream; the second run reuses the key and mints nothing; over HTTP and gRPC.
func TestSenderAnonymousMode(t *testing.T) {
	s := startSuite(t)
	clearSenderEnv(t)
	anonStream := natsx.AnonIngestStream(s.ns)
	for proto, endpoint := range s.senderProtocols() {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			before := s.anonymousKeys(t)
			first := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, Dir: dir})
			require.Equal(t, sdk.SourceMinted, first.Key().Source)
			require.True(t, first.Key().Anonymous)
			require.Equal(t, before+1, s.anonymousKeys(t), "one key minted")
			file := filepath.Join(dir, ".latchkey", "anon_key")
			require.Equal(t, file, first.Key().File)
			fi, err := os.Stat(file)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			secret, err := os.ReadFile(file) //nolint:gosec // the test's own directory
			require.NoError(t, err)
			id := s.keyID(t, strings.TrimSpace(string(secret)))
			require.NotEmpty(t, id)

			require.NoError(t, sendAll(first, "first-run"))
			require.NoError(t, first.Shutdown(context.Background()))
			prefix := s.ns + ".anon." + id + "."
			firstCounts := s.requireSignals(t, anonStream, prefix)

			second := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, Dir: dir})
			require.Equal(t, sdk.SourceFile, second.Key().Source)
			require.Equal(t, first.Key().DisplayPrefix, second.Key().DisplayPrefix)
			require.NoError(t, sendAll(second, "second-run"))
			require.Equal(t, before+1, s.anonymousKeys(t), "no second mint")
			for sig, n := range s.requireSignals(t, anonStream, prefix) {
				require.Greater(t, n, firstCounts[sig], "the second run's %s on the same key's subject", sig)
			}
			_, refused := second.LastRejection()
			require.False(t, refused)
			require.Empty(t, s.stored(s.ns+".ingest.>"), "anonymous data is in no account's stream")
		})
	}
}

// TestSenderKeys: a regular ingest key sends to its account's subject; an explicit key
// overrides the environment variable, so one program sends to two projects with two
// senders at once; over HTTP and gRPC.
func TestSenderKeys(t *testing.T) {
	s := startSuite(t)
	token, account := s.signUp("sender")
	projectA, projectB := s.Project(token), s.Project(token)
	_, keyA := s.IngestKey(token, projectA)
	_, keyB := s.IngestKey(token, projectB)
	clearSenderEnv(t)
	t.Setenv("LATCHKEY_API_KEY", keyA)
	before := s.anonymousKeys(t)
	for proto, endpoint := range s.senderProtocols() {
		t.Run(string(proto), func(t *testing.T) {
			fromEnv := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, Dir: t.TempDir()})
			explicit := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, Dir: t.TempDir(), APIKey: keyB})
			require.Equal(t, sdk.SourceEnv, fromEnv.Key().Source)
			require.Equal(t, sdk.SourceOption, explicit.Key().Source)
			aBefore := len(s.stored(s.ingestSubject(account, projectA, "prd", "traces")))
			bBefore := len(s.stored(s.ingestSubject(account, projectB, "prd", "traces")))
			require.NoError(t, sendAll(fromEnv, "project-a"))
			require.NoError(t, sendAll(explicit, "project-b"))
			s.requireSignals(t, natsx.IngestStream(s.ns), s.ingestSubject(account, projectA, "prd", ""))
			s.requireSignals(t, natsx.IngestStream(s.ns), s.ingestSubject(account, projectB, "prd", ""))
			require.Len(t, s.stored(s.ingestSubject(account, projectA, "prd", "traces")), aBefore+1, "one trace export for project A")
			require.Len(t, s.stored(s.ingestSubject(account, projectB, "prd", "traces")), bBefore+1, "one trace export for project B")
		})
	}
	require.Equal(t, before, s.anonymousKeys(t), "a sender with a key mints none")
}

// TestSenderReportsRevocation: once the key is revoked, the sender's exports fail and it
// reports the gateway's refusal (401 unauthenticated, "the key has been revoked"), over
// HTTP and gRPC.
func TestSenderReportsRevocation(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("revoked-sender")
	project := s.Project(token)
	clearSenderEnv(t)
	for proto, endpoint := range s.senderProtocols() {
		t.Run(string(proto), func(t *testing.T) {
			id, key := s.IngestKey(token, project)
			snd := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, APIKey: key, Dir: t.TempDir()})
			require.NoError(t, sendAll(snd, "before"))
			_, refused := snd.LastRejection()
			require.False(t, refused)

			s.Must(http.StatusOK, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"wait_for_gateways": true}))
			require.Error(t, sendAll(snd, "after"))
			r, refused := snd.LastRejection()
			require.True(t, refused)
			require.Equal(t, "unauthenticated", r.Code)
			require.Equal(t, "the key has been revoked", r.Message)
			require.Equal(t, "revoked", r.Reason)
			require.NotEmpty(t, r.RequestID)
			if proto == sdk.GRPC {
				require.Equal(t, codes.Unauthenticated, r.GRPCCode)
			} else {
				require.Equal(t, http.StatusUnauthorized, r.HTTPStatus)
			}
		})
	}
}

// senderLog collects a sender's log lines (its reminders and reports).
type senderLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *senderLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

// count is how many lines hold s.
func (l *senderLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// TestSenderClaimFlow: the anonymous-first life of a program using the SDK, with the real
// OpenTelemetry SDK, over HTTP and gRPC. Its first run mints an anonymous key and sends;
// the developer signs up and claims that key (messages_linked is what the sender sent);
// the running sender's next exports land in the account and it reminds, once, to switch
// keys, with the claim's grace_until; a sender switched to the new key sends to the same
// place with no notice; revoking the new key is reported as such.
func TestSenderClaimFlow(t *testing.T) {
	s := startSuite(t)
	clearSenderEnv(t)
	token, account := s.signUp("sdk-claimer")
	for proto, endpoint := range s.senderProtocols() {
		t.Run(string(proto), func(t *testing.T) {
			dir := t.TempDir()
			logs := &senderLog{}
			snd := s.startSender(t, sdk.Options{
				Protocol: proto, Endpoint: endpoint, Dir: dir, Logger: slog.New(slog.NewTextHandler(logs, nil)),
			})
			require.True(t, snd.Key().Anonymous)
			require.NoError(t, sendAll(snd, "before-claim"))
			anonKey, err := os.ReadFile(snd.Key().File)
			require.NoError(t, err)
			anonID := s.keyID(t, strings.TrimSpace(string(anonKey)))
			sent := 0
			for _, m := range s.storedIn(natsx.AnonIngestStream(s.ns), natsx.AnonKeySubjects(s.ns, anonID)) {
				sent += len(m.Headers().Values("Latchkey-Key-Id"))
			}
			require.GreaterOrEqual(t, sent, 3, "a trace, a metric and a log export")

			project := s.Project(token)
			claim := s.Must(http.StatusOK, s.Call("POST", "/v1/keys:claim", token, map[string]any{
				"anonymous_key": strings.TrimSpace(string(anonKey)), "project_id": project, "environment": "prd",
			}))
			require.EqualValues(t, sent, claim.Get("claimed", "messages_linked"))
			graceUntil, err := time.Parse(time.RFC3339Nano, claim.Str("claimed", "grace_until"))
			require.NoError(t, err)
			accountPrefix := s.ingestSubject(account, project, "prd", "")
			linked := s.requireSignals(t, natsx.IngestStream(s.ns), accountPrefix)

			// The running sender: its data is the account's now, and it is reminded once. The
			// gateway answers with the notice from when the claim's event reaches it (it drops
			// its cached answer for the key then), a few milliseconds after the claim returns.
			sends := 0
			testutil.Eventually(t, 5*time.Second, func() bool {
				require.NoError(t, sendAll(snd, "after-claim"))
				sends++
				_, ok := snd.Notice()
				return ok && sends >= 2
			}, "the sender to see the claim notice")
			n, _ := snd.Notice()
			require.Equal(t, sdk.NoticeClaimed, n.Kind)
			require.Equal(t, graceUntil.UTC().Truncate(time.Second), n.GraceUntil.UTC())
			require.Equal(t, 1, logs.count("has been claimed"), "one reminder per start: %v", logs.lines)
			for sig, count := range s.requireSignals(t, natsx.IngestStream(s.ns), accountPrefix) {
				require.Greater(t, count, linked[sig], "the claimed key's new %s go to the account", sig)
			}

			// Switched to the claim's key: the same place, no notice.
			switched := s.startSender(t, sdk.Options{Protocol: proto, Endpoint: endpoint, Dir: dir, APIKey: claim.Str("secret")})
			require.False(t, switched.Key().Anonymous)
			require.NoError(t, sendAll(switched, "switched"))
			_, noticed := switched.Notice()
			require.False(t, noticed)

			// Revoked: reported with its reason.
			s.Must(http.StatusOK, s.Call("POST", "/v1/keys/"+claim.Str("key.id")+":revoke", token, map[string]any{"wait_for_gateways": true}))
			require.Error(t, sendAll(switched, "after-revoke"))
			r, refused := switched.LastRejection()
			require.True(t, refused)
			require.Equal(t, "unauthenticated", r.Code)
			require.Equal(t, "revoked", r.Reason)
		})
	}
}

// TestSenderDetectsProfile: against a suite running the typed profile, a sender with no
// setting at all mints a gt_anon_ key into .glasstrace/anon_key and sends with it; with
// GLASSTRACE_API_KEY set it sends with that key; no .latchkey directory appears.
func TestSenderDetectsProfile(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.KeyProfile = "typed"
	}))
	clearSenderEnv(t)
	dir := t.TempDir()
	snd := s.startSender(t, sdk.Options{Endpoint: s.ingest, Dir: dir})
	require.Equal(t, sdk.SourceMinted, snd.Key().Source)
	require.Equal(t, "typed", snd.Key().Profile)
	require.True(t, strings.HasPrefix(snd.Key().DisplayPrefix, "gt_anon_"))
	require.Equal(t, filepath.Join(dir, ".glasstrace", "anon_key"), snd.Key().File)
	require.NoError(t, sendAll(snd, "typed-anonymous"))
	secret, err := os.ReadFile(snd.Key().File)
	require.NoError(t, err)
	s.requireSignals(t, natsx.AnonIngestStream(s.ns), s.ns+".anon."+s.keyID(t, strings.TrimSpace(string(secret)))+".")
	require.Equal(t, []string{".glasstrace"}, dirNames(t, dir))

	token, account := s.signUp("typed-sender")
	project := s.Project(token)
	_, key := s.IngestKey(token, project)
	require.True(t, strings.HasPrefix(key, "gt_dev_"), key[:8])
	t.Setenv("GLASSTRACE_API_KEY", key)
	snd = s.startSender(t, sdk.Options{Endpoint: s.ingest, Dir: t.TempDir()})
	require.Equal(t, sdk.SourceEnv, snd.Key().Source)
	require.Equal(t, "typed", snd.Key().Profile)
	require.NoError(t, sendAll(snd, "typed-dev"))
	s.requireSignals(t, natsx.IngestStream(s.ns), s.ingestSubject(account, project, "prd", ""))
}

// TestSenderMintRetries: first runs starting at once from one address, more than the
// per-IP minting burst, all start: the ones answered 429 try again after Retry-After.
func TestSenderMintRetries(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.AnonymousLimit = ratelimit.Limit{PerSecond: 2, Burst: 2}
	}))
	clearSenderEnv(t)
	before := s.anonymousKeys(t)
	const n = 6
	var (
		wg   sync.WaitGroup
		errs [n]error
	)
	for i := range n {
		dir := t.TempDir()
		wg.Go(func() {
			snd, err := sdk.Start(context.Background(), sdk.Options{APIURL: s.api, Endpoint: s.ingest, Dir: dir, Logger: slog.New(slog.DiscardHandler)})
			if errs[i] = err; err == nil {
				errs[i] = snd.Shutdown(context.Background())
			}
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
	}
	require.Equal(t, before+n, s.anonymousKeys(t), "one key per start")
}
