package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

func TestEnsureStreams(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	check := func(name, subject string, maxAge, dup time.Duration) {
		s, err := e.js.Stream(ctx, name)
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		require.Equal(t, []string{subject}, info.Config.Subjects)
		require.Equal(t, maxAge, info.Config.MaxAge)
		require.Equal(t, dup, info.Config.Duplicates)
		require.Equal(t, jetstream.FileStorage, info.Config.Storage)
		require.Equal(t, jetstream.LimitsPolicy, info.Config.Retention)
	}
	check(Stream(e.ns), e.ns+".ingest.>", time.Hour, 2*time.Minute)
	check(AnonStream(e.ns), e.ns+".anon.>", time.Hour, 2*time.Minute)
	require.Equal(t, "T", Stream(e.ns)[:1], "stream names are the upper-cased namespace")

	// Running it again updates in place (a changed data TTL takes effect at restart).
	require.NoError(t, EnsureStreams(ctx, e.js, e.ns, 30*24*time.Hour, 48*time.Hour))
	check(Stream(e.ns), e.ns+".ingest.>", 30*24*time.Hour, 2*time.Minute)
	check(AnonStream(e.ns), e.ns+".anon.>", 48*time.Hour, 2*time.Minute)
	// A retention shorter than the duplicate window shortens the window with it.
	require.NoError(t, EnsureStreams(ctx, e.js, e.ns, time.Minute, time.Minute))
	check(AnonStream(e.ns), e.ns+".anon.>", time.Minute, time.Minute)

	require.Error(t, EnsureStreams(ctx, e.js, "bad.ns", time.Hour, time.Hour))
	require.Error(t, EnsureStreams(ctx, e.js, e.ns, 0, time.Hour))
}

func TestSubject(t *testing.T) {
	s, err := Subject("lk", goodGrant, Metrics)
	require.NoError(t, err)
	require.Equal(t, "lk.ingest.acc_1.prj_1.prd.metrics", s)
	s, err = Subject("lk", grant.Grant{KeyID: "k", AccountID: "acc"}, Traces)
	require.NoError(t, err)
	require.Equal(t, "lk.ingest.acc._._.traces", s)
	s, err = Subject("lk", grant.Grant{KeyID: "k", ProjectID: "p", Environment: "dev", Anonymous: true}, Logs)
	require.NoError(t, err)
	require.Equal(t, "lk.anon.p.dev.logs", s)
	for _, g := range []grant.Grant{
		{KeyID: "k", AccountID: ""},
		{KeyID: "k", AccountID: "a.b"},
		{KeyID: "k", AccountID: "a", ProjectID: "p*"},
		{KeyID: "k", AccountID: "a", Environment: "prd >"},
		{KeyID: "k", Anonymous: true, ProjectID: "p.q"},
	} {
		_, err := Subject("lk", g, Logs)
		require.Error(t, err, "%+v", g)
	}
}

// A grant that cannot name a subject is a bug on our side: refused, never misfiled.
func TestPublishRefusesUnroutableGrant(t *testing.T) {
	e := newEnv(t, "")
	err := e.pub.Publish(context.Background(), grant.Grant{KeyID: "k", AccountID: "a.b"}, Logs, []byte{})
	require.True(t, apierr.IsCode(err, apierr.Internal), "%v", err)
	err = e.pub.Publish(context.Background(), grant.Grant{AccountID: "a"}, Logs, []byte{})
	require.True(t, apierr.IsCode(err, apierr.Internal), "%v", err)
	require.Empty(t, e.messages(t, Stream(e.ns)))
}

// With no stream to take the data (JetStream up, nothing acking), the answer is 503.
func TestNoStreamIs503(t *testing.T) {
	e := newEnv(t, "", withoutStreams())
	r := e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), map[string]string{
		"Authorization": "Bearer good", "Content-Type": contentTypeProto,
	})
	env := requireError(t, r, http.StatusServiceUnavailable, apierr.Unavailable)
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Equal(t, 1, env.RetryAfterSeconds)
}

// JetStream going away gives 503 / UNAVAILABLE with a retry hint, never a 500 and never a
// success; once it is back, requests succeed again, and every request that was answered
// 200 is in the stream exactly once.
func TestJetStreamUnavailable(t *testing.T) {
	srv := testutil.StartNATS(t)
	e := newEnv(t, srv.URL)
	traces := ptraceotlp.NewGRPCClient(e.grpcConn(t))
	body := encodeProto(t, sampleRequest(Traces))

	var accepted []string
	n := 0
	sendHTTP := func() response {
		n++
		id := fmt.Sprintf("r-%d", n)
		r := e.post(t, PathTraces, bytes.NewReader(body), map[string]string{
			"Authorization": "Bearer good", "Content-Type": contentTypeProto, requestid.Header: id,
		})
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, r.status, "body: %s", r.body)
		if r.status == http.StatusOK {
			accepted = append(accepted, id)
		}
		return r
	}
	sendGRPC := func() error {
		n++
		id := fmt.Sprintf("r-%d", n)
		_, err := traces.Export(grpcCtx(t, "authorization", "Bearer good", requestid.MetadataKey, id),
			ptraceotlp.NewExportRequestFromTraces(sampleTraces(1)))
		if err == nil {
			accepted = append(accepted, id)
		}
		return err
	}

	require.Equal(t, http.StatusOK, sendHTTP().status)
	require.NoError(t, sendGRPC())

	srv.Stop()
	testutil.Eventually(t, 10*time.Second, func() bool { return !e.nc.IsConnected() }, "the client to notice")
	for range 3 {
		r := sendHTTP()
		env := requireError(t, r, http.StatusServiceUnavailable, apierr.Unavailable)
		require.Equal(t, "1", r.header.Get("Retry-After"))
		require.Equal(t, 1, env.RetryAfterSeconds)

		retry := requireStatus(t, sendGRPC(), codes.Unavailable, apierr.Unavailable)
		require.NotNil(t, retry, "UNAVAILABLE must carry RetryInfo")
		require.Equal(t, time.Second, retry.GetRetryDelay().AsDuration())
	}

	srv.Start()
	testutil.Eventually(t, 15*time.Second, func() bool { return sendHTTP().status == http.StatusOK }, "HTTP ingest to recover")
	testutil.Eventually(t, 15*time.Second, func() bool { return sendGRPC() == nil }, "gRPC ingest to recover")
	for range 3 {
		require.Equal(t, http.StatusOK, sendHTTP().status)
		require.NoError(t, sendGRPC())
	}

	msgs := e.messages(t, Stream(e.ns))
	perID := map[string]int{}
	for _, m := range msgs {
		for _, id := range m.Header.Values(HeaderRequestID) {
			perID[id]++
		}
	}
	for _, id := range accepted {
		require.Equal(t, 1, perID[id], "request %s was answered 200", id)
	}
	// Refused while disconnected means never sent, so nothing else turned up later.
	require.Len(t, msgs, len(accepted))
}

// Requests for one subject that arrive while its previous message awaits JetStream's ack
// are merged into one message, across keys; every request is stored exactly once, on its
// own subject, and each message is a valid export request that splits back into its
// requests by the headers.
func TestPublishMergesConcurrentRequestsOfASubject(t *testing.T) {
	e := newEnv(t, "")
	count, sum := histogram(t, publishRequests)
	msgs, ids := publishConcurrently(t, e, 200)
	require.Less(t, len(msgs), 3*200, "concurrent requests of a subject share messages")
	t.Logf("%d requests in %d messages", 3*200, len(msgs))
	requireEachStoredOnce(t, msgs, ids)
	mixed := false
	for _, m := range msgs {
		keys := m.Header.Values(HeaderKeyID)
		mixed = mixed || slices.ContainsFunc(keys, func(k string) bool { return k != keys[0] })
	}
	require.True(t, mixed, "requests of several keys share a message")
	count2, sum2 := histogram(t, publishRequests)
	require.Equal(t, uint64(len(msgs)), count2-count, "one observation per message")
	require.Equal(t, 600.0, sum2-sum, "of how many requests it holds")
}

func histogram(t *testing.T, h prometheus.Histogram) (count uint64, sum float64) {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// A merged message stops at the configured number of requests and bytes.
func TestPublishMergeLimits(t *testing.T) {
	e := newEnv(t, "")
	e.pub.maxRequests = 3
	msgs, ids := publishConcurrently(t, e, 60)
	requireEachStoredOnce(t, msgs, ids)
	for _, m := range msgs {
		require.LessOrEqual(t, len(m.Header.Values(HeaderRequestID)), 3)
	}

	e = newEnv(t, "")
	one := len(encodeProto(t, ptraceotlp.NewExportRequestFromTraces(namedSpan("r-000"))))
	e.pub.maxBytes = 2 * one
	msgs, ids = publishConcurrently(t, e, 60)
	requireEachStoredOnce(t, msgs, ids)
	for _, m := range msgs {
		require.LessOrEqual(t, len(m.Data), 2*one)
	}
}

// When the message fails, every request merged into it fails: none is told it was accepted.
func TestPublishMergedFailureFailsEveryRequest(t *testing.T) {
	e := newEnv(t, "", withoutStreams())
	_, errs := publishAll(t, e, 50)
	require.Len(t, errs, 150)
	for id, err := range errs {
		require.True(t, apierr.IsCode(err, apierr.Unavailable), "%s: %v", id, err)
	}
}

// A request id the gateway made is unique: no Nats-Msg-Id for JetStream to remember.
func TestGeneratedRequestIDHasNoMsgID(t *testing.T) {
	e := newEnv(t, "")
	r := e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), map[string]string{
		"Authorization": "Bearer good", "Content-Type": contentTypeProto,
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	id := r.header.Get(requestid.Header)
	msgs := e.byRequestID(t, Stream(e.ns), id)
	require.Len(t, msgs, 1)
	require.Empty(t, msgs[0].Header.Get(jetstream.MsgIDHeader))
}

// publishConcurrently publishes n requests for each of three keys at once (two of them
// for one subject), each one span named after its request id, requires every one to
// succeed, and returns the stream's messages and the request ids.
func publishConcurrently(t *testing.T, e *env, n int) ([]*jetstream.RawStreamMsg, map[string]string) {
	t.Helper()
	ids, errs := publishAll(t, e, n)
	for id, err := range errs {
		require.NoError(t, err, id)
	}
	return e.messages(t, Stream(e.ns)), ids
}

// publishAll publishes n requests for each of three keys at once (key_a and key_b for
// one subject, key_c in another environment) and returns the request ids (to their key
// ids) and each one's error.
func publishAll(t *testing.T, e *env, n int) (ids map[string]string, errs map[string]error) {
	t.Helper()
	staging := goodGrant
	staging.Environment = "stg"
	keys := map[string]grant.Grant{"key_a": goodGrant, "key_b": goodGrant, "key_c": staging}
	ids, errs = map[string]string{}, map[string]error{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := make(chan struct{})
	for keyID, g := range keys {
		g.KeyID = keyID
		for i := range n {
			id := fmt.Sprintf("%s-r-%03d", keyID, i)
			ids[id] = keyID
			payload := encodeProto(t, ptraceotlp.NewExportRequestFromTraces(namedSpan(id)))
			wg.Go(func() {
				<-start
				ctx := requestid.With(context.Background(), id, false)
				err := e.pub.Publish(ctx, g, Traces, payload)
				mu.Lock()
				defer mu.Unlock()
				errs[id] = err
			})
		}
	}
	close(start)
	wg.Wait()
	return ids, errs
}

func namedSpan(name string) ptrace.Traces {
	td := ptrace.NewTraces()
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName(name)
	return td
}

func requireEachStoredOnce(t *testing.T, msgs []*jetstream.RawStreamMsg, ids map[string]string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		require.Empty(t, m.Header.Get(jetstream.MsgIDHeader))
		req := ptraceotlp.NewExportRequest()
		require.NoError(t, req.UnmarshalProto(m.Data), "a merged message is one export request")
		keyIDs, requestIDs, sizes := m.Header.Values(HeaderKeyID), m.Header.Values(HeaderRequestID), m.Header.Values(HeaderRequestSize)
		require.Len(t, keyIDs, len(requestIDs))
		require.Len(t, sizes, len(requestIDs))
		rest := m.Data
		for i, id := range requestIDs {
			// Each part, cut out by its size, is the request itself.
			n, err := strconv.Atoi(sizes[i])
			require.NoError(t, err)
			part := ptraceotlp.NewExportRequest()
			require.NoError(t, part.UnmarshalProto(rest[:n]))
			rest = rest[n:]
			require.Equal(t, id, part.Traces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())
			require.Equal(t, ids[id], keyIDs[i], "request %s under its own key", id)
			wantEnv := "prd"
			if keyIDs[i] == "key_c" {
				wantEnv = "stg"
			}
			require.Equal(t, "acc_1.prj_1."+wantEnv+".traces", m.Subject[strings.Index(m.Subject, "acc_1"):], "request %s on its own subject", id)
			seen[id]++
		}
		require.Empty(t, rest, "the sizes add up to the payload")
		require.Equal(t, len(requestIDs), req.Traces().ResourceSpans().Len())
	}
	require.Len(t, seen, len(ids))
	for id, n := range seen {
		require.Equal(t, 1, n, id)
	}
}
