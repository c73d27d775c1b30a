package allinone

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// spans records n finished spans named name, ready to hand to an exporter.
func spans(name string, n int) []sdktrace.ReadOnlySpan {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("latchkey-test")
	for range n {
		_, sp := tr.Start(context.Background(), name)
		sp.End()
	}
	return rec.Ended()
}

func logRecords(body string) []sdklog.Record {
	var r sdklog.Record
	r.SetBody(attribute.StringValue(body))
	r.SetTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	return []sdklog.Record{r}
}

// verifications sums the gateway's verification outcomes: one per request that reached
// verification, so a delta of 1 means the client did not retry.
func verifications(t *testing.T) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, f := range families {
		if f.GetName() == "latchkey_gateway_verifications_total" {
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// stored returns the messages in the ingest stream on subject.
func (s *suite) stored(subject string) []jetstream.Msg {
	s.t.Helper()
	return s.storedIn(natsx.IngestStream(s.ns), subject)
}

// storedIn returns the messages in stream on subject.
func (s *suite) storedIn(stream, subject string) []jetstream.Msg {
	s.t.Helper()
	nc, err := nats.Connect(s.natsURL)
	require.NoError(s.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(s.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	require.NoError(s.t, err)
	info, err := cons.Info(ctx)
	require.NoError(s.t, err)
	var out []jetstream.Msg
	if info.NumPending == 0 {
		return nil
	}
	batch, err := cons.Fetch(int(info.NumPending), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(s.t, err)
	for m := range batch.Messages() {
		out = append(out, m)
	}
	return out
}

// storedRequestIDs lists the request ids of the messages on subject, as many times as
// they are stored (a message may hold several requests of one key).
func (s *suite) storedRequestIDs(subject string) []string {
	var ids []string
	for _, m := range s.stored(subject) {
		ids = append(ids, m.Headers().Values("Latchkey-Request-Id")...)
	}
	return ids
}

func (s *suite) ingestSubject(account, project, env, signal string) string {
	return s.ns + ".ingest." + account + "." + project + "." + env + "." + signal
}

// TestOTelExportersThroughTheGateway: the OpenTelemetry Go SDK's own exporters send
// through the gateway with a valid key; with a revoked, expired or forged key they get the
// authentication error and do not retry.
func TestOTelExportersThroughTheGateway(t *testing.T) {
	s := startSuite(t)
	token, account := s.signUp("otel")
	project := s.Project(token)
	_, good := s.IngestKey(token, project)
	revokedID, revoked := s.IngestKey(token, project)
	s.Must(200, s.Call("POST", "/v1/keys/"+revokedID+":revoke", token, map[string]any{"wait_for_gateways": true}))
	expiring := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{
		"type": "ingest", "project_id": project, "environment": "prd", "expires_at": time.Now().Add(time.Second).Format(time.RFC3339Nano),
	})).Str("secret")
	forged := good[:len(good)-1] + "a"
	if forged == good {
		forged = good[:len(good)-1] + "b"
	}
	ctx := context.Background()
	bearer := func(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }
	exporters := map[string]func(key string) error{
		"traces over HTTP": func(key string) error {
			exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.ingest+"/v1/traces"), otlptracehttp.WithHeaders(bearer(key)))
			require.NoError(t, err)
			defer exp.Shutdown(ctx)
			return exp.ExportSpans(ctx, spans("checkout", 3))
		},
		"traces over gRPC": func(key string) error {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.otlpGRPC), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(bearer(key)))
			require.NoError(t, err)
			defer exp.Shutdown(ctx)
			return exp.ExportSpans(ctx, spans("checkout", 3))
		},
		"logs over HTTP": func(key string) error {
			exp, err := otlploghttp.New(ctx, otlploghttp.WithEndpointURL(s.ingest+"/v1/logs"), otlploghttp.WithHeaders(bearer(key)))
			require.NoError(t, err)
			defer exp.Shutdown(ctx)
			return exp.Export(ctx, logRecords("hello"))
		},
		"logs over gRPC": func(key string) error {
			exp, err := otlploggrpc.New(ctx, otlploggrpc.WithEndpoint(s.otlpGRPC), otlploggrpc.WithInsecure(), otlploggrpc.WithHeaders(map[string]string{"x-api-key": key}))
			require.NoError(t, err)
			defer exp.Shutdown(ctx)
			return exp.Export(ctx, logRecords("hello"))
		},
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return s.Verify(token, expiring).Str("code") == "expired"
	}, "the expiring key to expire")
	for name, export := range exporters {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, export(good))
			for what, key := range map[string]string{"revoked": revoked, "expired": expiring, "forged": forged} {
				before := verifications(t)
				start := time.Now()
				err := export(key)
				require.Error(t, err, "%s key", what)
				require.Less(t, time.Since(start), 3*time.Second, "%s key: the exporter gave up at once", what)
				require.Equal(t, 1.0, verifications(t)-before, "%s key: exactly one attempt, no retry", what)
			}
		})
	}
	require.Len(t, s.storedRequestIDs(s.ingestSubject(account, project, "prd", "traces")), 2, "each accepted trace export stored once")
	require.Len(t, s.storedRequestIDs(s.ingestSubject(account, project, "prd", "logs")), 2, "each accepted log export stored once")
	traces := s.stored(s.ingestSubject(account, project, "prd", "traces"))
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(traces[0].Data()))
	require.Equal(t, 3, req.Traces().SpanCount())
	require.Equal(t, "checkout", req.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())
	require.NotEmpty(t, traces[0].Headers().Get("Latchkey-Key-Id"))
}

// TestGatewayDecisions: origins, capabilities of the key and failed-authentication limits.
func TestGatewayDecisions(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.FailedAuthPerSecond, g.FailedAuthBurst = 0.5, 5
	}))
	token, _ := s.signUp("decisions")
	project := s.Project(token, "https://app.example.com")
	_, key := s.IngestKey(token, project)
	body := string(tracesBody(t))
	send := func(key, origin string) testutil.Reply {
		h := []string{"Content-Type", "application/x-protobuf"}
		if origin != "" {
			h = append(h, "Origin", origin)
		}
		return s.Send("POST", s.ingest+"/v1/traces", key, body, h...)
	}
	require.Equal(t, 200, send(key, "").Status)
	require.Equal(t, 200, send(key, "https://app.example.com").Status)
	send(key, "https://evil.example.com").RequireError(t, 403, "origin_not_allowed")

	// Five failed authentications from this address; then keys the gateway has not seen
	// get 429 with Retry-After instead of a lookup, while the working key goes on working.
	for range 5 {
		send("lk_ing_"+strings.Repeat("A", 49), "").RequireError(t, 401, "unauthenticated")
	}
	_, fresh := s.IngestKey(token, project)
	r := send(fresh, "")
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "ip", r.Str("tier"))
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Equal(t, 200, send(key, "").Status)
}

func tracesBody(t testing.TB) []byte {
	t.Helper()
	req := ptraceotlp.NewExportRequest()
	sp := req.Traces().ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetName("op")
	b, err := req.MarshalProto()
	require.NoError(t, err)
	return b
}

// metric sums a counter or a histogram's count from the default registry.
func metric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				total += float64(h.GetSampleCount())
			} else {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// TestVerificationOrder: garbage never reaches the keys service; a burst of requests with
// a key the gateway has not seen makes one VerifyKey call; then the cache answers.
func TestVerificationOrder(t *testing.T) {
	s := startSuite(t)
	applied := metric(t, "latchkey_gateway_events_applied_total")
	token, _ := s.signUp("order")
	_, key := s.IngestKey(token, s.Project(token))
	// The project's and the key's events invalidate entries; let them land first, so the
	// counts below are exact.
	testutil.Eventually(t, 5*time.Second, func() bool {
		return metric(t, "latchkey_gateway_events_applied_total") >= applied+2
	}, "the project and key events at the gateway")
	body := tracesBody(t)
	post := func(k string) int {
		return s.Send("POST", s.ingest+"/v1/traces", k, string(body), "Content-Type", "application/x-protobuf").Status
	}
	rpcs := metric(t, "latchkey_gateway_verify_rpc_seconds")
	for _, garbage := range []string{"x", "lk_ing_", "lk_ing_" + strings.Repeat("0", 49), key[:len(key)-1] + "!", strings.Repeat("k", 400)} {
		require.Equal(t, 401, post(garbage), garbage)
	}
	require.Equal(t, rpcs, metric(t, "latchkey_gateway_verify_rpc_seconds"), "garbage cost no lookup")

	var wg sync.WaitGroup
	statuses := make([]int, 50)
	for i := range statuses {
		wg.Add(1)
		go func() { defer wg.Done(); statuses[i] = post(key) }()
	}
	wg.Wait()
	for _, st := range statuses {
		require.Equal(t, 200, st)
	}
	require.Equal(t, rpcs+1, metric(t, "latchkey_gateway_verify_rpc_seconds"), "one VerifyKey for fifty concurrent requests")
	hits := metric(t, "latchkey_gateway_cache_hits_total")
	require.Equal(t, 200, post(key))
	require.Equal(t, hits+1, metric(t, "latchkey_gateway_cache_hits_total"))
	require.Equal(t, rpcs+1, metric(t, "latchkey_gateway_verify_rpc_seconds"))
}

// TestSuspensionReachesGateways: suspending an account stops its keys at the gateway at
// once, even though the keys service caches account facts for an hour here: the gateway
// drops its entries on the event and the keys service answers it from accounts, fresh.
func TestSuspensionReachesGateways(t *testing.T) {
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) {
		k.DirectoryTTL = time.Hour
	}))
	token, account := s.signUp("suspended")
	_, key := s.IngestKey(token, s.Project(token))
	body := string(tracesBody(t))
	post := func() testutil.Reply {
		return s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	}
	s.Must(200, post())
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+account+":suspend", s.operator, map[string]any{"reason": "test"}))
	testutil.Eventually(t, 2*time.Second, func() bool { return post().Status == 403 }, "the gateway to refuse the suspended account's key")
	post().RequireError(t, 403, "account_suspended")

	// Reinstated, the key works again just as promptly: the gateway's cached refusal goes
	// with the event.
	s.Must(200, s.Call("POST", "/v1/admin/accounts/"+account+":reinstate", s.operator, map[string]any{"reason": "paid"}))
	testutil.Eventually(t, 2*time.Second, func() bool { return post().Status == 200 }, "the gateway to accept the reinstated account's key")
}

// TestRevocationReceiptFromTheStart: from the moment the suite is ready, a revocation that
// waits for the gateways counts the one gateway, and once it returns the gateway refuses
// the key it was serving from its cache: no window after start-up where a receipt is
// complete without it.
func TestRevocationReceiptFromTheStart(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("early-revoker")
	project := s.Project(token)
	for i := range 5 {
		id, key := s.IngestKey(token, project)
		send := func() int {
			return s.Send("POST", s.ingest+"/v1/traces", key, string(tracesBody(t)), "Content-Type", "application/x-protobuf").Status
		}
		require.Equal(t, 200, send(), "round %d", i)
		r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"wait_for_gateways": true}))
		require.Equal(t, float64(1), r.Get("receipt", "gateways_live"), "round %d: %s", i, r.Raw)
		require.Equal(t, true, r.Get("receipt", "complete"), r.Raw)
		require.Equal(t, 401, send(), "round %d: refused once the receipt is complete", i)
	}
}
