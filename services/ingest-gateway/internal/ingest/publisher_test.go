package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

func TestStreamConfigs(t *testing.T) {
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
	check(natsx.IngestStream(e.ns), e.ns+".ingest.>", time.Hour, 2*time.Minute)
	check(natsx.AnonIngestStream(e.ns), e.ns+".anon.>", time.Hour, 2*time.Minute)
	require.Equal(t, "T", natsx.IngestStream(e.ns)[:1], "stream names are the upper-cased namespace")

	// Running it again updates in place (a changed data TTL takes effect at restart).
	require.NoError(t, ensureStreams(ctx, e.js, e.ns, 30*24*time.Hour, 48*time.Hour))
	check(natsx.IngestStream(e.ns), e.ns+".ingest.>", 30*24*time.Hour, 2*time.Minute)
	check(natsx.AnonIngestStream(e.ns), e.ns+".anon.>", 48*time.Hour, 2*time.Minute)
	// A retention shorter than the duplicate window shortens the window with it.
	require.NoError(t, ensureStreams(ctx, e.js, e.ns, time.Minute, time.Minute))
	check(natsx.AnonIngestStream(e.ns), e.ns+".anon.>", time.Minute, time.Minute)

	require.Error(t, ensureStreams(ctx, e.js, "bad.ns", time.Hour, time.Hour))
	require.Error(t, ensureStreams(ctx, e.js, e.ns, 0, time.Hour))
}

func TestSubject(t *testing.T) {
	s, err := Subject("lk", goodGrant, Metrics)
	require.NoError(t, err)
	require.Equal(t, "lk.ingest.acc_1.prj_1.prd.metrics", s)
	s, err = Subject("lk", grant.Grant{KeyID: "k", AccountID: "acc"}, Traces)
	require.NoError(t, err)
	require.Equal(t, "lk.ingest.acc._._.traces", s)
	// Anonymous data goes to the key's own subject, so one key's data can be found and claimed.
	s, err = Subject("lk", grant.Grant{KeyID: "key_1", Anonymous: true}, Logs)
	require.NoError(t, err)
	require.Equal(t, "lk.anon.key_1.logs", s)
	for _, g := range []grant.Grant{
		{KeyID: "k", AccountID: ""},
		{KeyID: "k", AccountID: "a.b"},
		{KeyID: "k", AccountID: "a", ProjectID: "p*"},
		{KeyID: "k", AccountID: "a", Environment: "prd >"},
		{KeyID: "", Anonymous: true},
		{KeyID: "k.q", Anonymous: true},
		{KeyID: "k>", Anonymous: true},
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
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns)))
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

	msgs := e.messages(t, natsx.IngestStream(e.ns))
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

// A request id the gateway made is unique: no Nats-Msg-Id for JetStream to remember.
func TestGeneratedRequestIDHasNoMsgID(t *testing.T) {
	e := newEnv(t, "")
	r := e.post(t, PathTraces, bytes.NewReader(encodeProto(t, sampleRequest(Traces))), map[string]string{
		"Authorization": "Bearer good", "Content-Type": contentTypeProto,
	})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	id := r.header.Get(requestid.Header)
	msgs := e.byRequestID(t, natsx.IngestStream(e.ns), id)
	require.Len(t, msgs, 1)
	require.Empty(t, msgs[0].Header.Get(jetstream.MsgIDHeader))
}
