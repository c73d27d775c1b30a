package link_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys/internal/link"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

const (
	anonKey  = "key_01ANONYMOUSAAAAAAAAAAAAAA"
	otherKey = "key_01ANONYMOUSBBBBBBBBBBBBBB"
)

var target = link.Target{AccountID: "acc_01TARGET", ProjectID: "prj_01TARGET", Environment: "dev"}

func linkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestLinkMovesEveryRequest: every message of the key, and only of that key, is republished
// to the target's subject of the same signal with its payload and headers (the gateway's
// own Nats-Msg-Id excepted), in order; a message the gateway merged from two requests
// counts twice.
func TestLinkMovesEveryRequest(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("one")})
	linktest.PublishAnon(t, js, ns, otherKey, "traces", linktest.Request{RequestID: "req_other", Payload: []byte("other")})
	linktest.PublishAnon(t, js, ns, anonKey, "metrics",
		linktest.Request{RequestID: "req_2", Payload: []byte("two")}, linktest.Request{RequestID: "req_3", Payload: []byte("three")})
	// A request with the client's own request id travels alone under a Nats-Msg-Id.
	subject, err := natsx.AnonSubject(ns, anonKey, "logs")
	require.NoError(t, err)
	m := &nats.Msg{Subject: subject, Data: []byte("four"), Header: nats.Header{
		"Latchkey-Key-Id": {anonKey}, "Latchkey-Request-Id": {"client-4"}, "Latchkey-Request-Size": {"4"},
	}}
	_, err = js.PublishMsg(linkCtx(t), m, jetstream.WithMsgID("gateway-id"))
	require.NoError(t, err)

	l := link.New(js, ns)
	res, err := l.Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 4, StoredRequests: 4}, res)

	got := linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns))
	require.Len(t, got, 3)
	at := func(sig string) string {
		s, err := natsx.IngestSubject(ns, target.AccountID, target.ProjectID, target.Environment, sig)
		require.NoError(t, err)
		return s
	}
	require.Equal(t, at("traces"), got[0].Subject)
	require.Equal(t, []byte("one"), got[0].Data)
	require.Equal(t, []string{anonKey}, got[0].Header.Values("Latchkey-Key-Id"))
	require.Equal(t, []string{"req_1"}, got[0].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"3"}, got[0].Header.Values("Latchkey-Request-Size"))
	require.Equal(t, at("metrics"), got[1].Subject)
	require.Equal(t, []byte("twothree"), got[1].Data)
	require.Equal(t, []string{anonKey, anonKey}, got[1].Header.Values("Latchkey-Key-Id"))
	require.Equal(t, []string{"req_2", "req_3"}, got[1].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"3", "5"}, got[1].Header.Values("Latchkey-Request-Size"))
	require.Equal(t, at("logs"), got[2].Subject)
	require.Equal(t, []byte("four"), got[2].Data)
	require.Equal(t, []string{"client-4"}, got[2].Header.Values("Latchkey-Request-Id"))
	for _, g := range got {
		require.Contains(t, g.Header.Get(jetstream.MsgIDHeader), "claim-"+natsx.AnonIngestStream(ns)+"-")
	}
	// The source is left as it was.
	require.Len(t, linktest.Messages(t, js, natsx.AnonIngestStream(ns), natsx.AnonIngestSubjects(ns)), 4)
}

// TestLinkTwiceLinksOnce: linking the same key to the same target again (a retried claim)
// stores nothing twice and answers the same counts; to another target it is a link of its
// own.
func TestLinkTwiceLinksOnce(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	for i := range 3 {
		linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: fmt.Sprint("req_", i), Payload: []byte{byte(i)}})
	}
	l := link.New(js, ns)
	first, err := l.Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 3, StoredRequests: 3}, first)
	again, err := l.Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 3, Duplicates: 3}, again)
	require.Len(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)), 3)

	other := link.Target{AccountID: "acc_01OTHER", ProjectID: "prj_01OTHER", Environment: "prod"}
	res, err := l.Link(linkCtx(t), anonKey, other)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 3, StoredRequests: 3}, res)
	require.Len(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)), 6)
}

// TestLinkAgainStoresOnlyNew: a second Link of the key to the same target (a claim's sweep)
// stores only what reached the anonymous stream after the first, and StoredRequests counts
// the requests in it, a merged message counting each.
func TestLinkAgainStoresOnlyNew(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("1")})
	l := link.New(js, ns)
	first, err := l.Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 1, Requests: 1, StoredRequests: 1}, first)

	linktest.PublishAnon(t, js, ns, anonKey, "logs",
		linktest.Request{RequestID: "req_2", Payload: []byte("2")}, linktest.Request{RequestID: "req_3", Payload: []byte("3")})
	sweep, err := l.Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 2, Requests: 3, Duplicates: 1, StoredRequests: 2}, sweep)
	got := linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns))
	require.Len(t, got, 2)
	require.Equal(t, []string{"req_1"}, got[0].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"req_2", "req_3"}, got[1].Header.Values("Latchkey-Request-Id"))
}

// TestLinkMany: more messages than one fetch or one window of acks.
func TestLinkMany(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	const n = 700
	ctx := linkCtx(t)
	subject, err := natsx.AnonSubject(ns, anonKey, "traces")
	require.NoError(t, err)
	var futures []jetstream.PubAckFuture
	for i := range n {
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(fmt.Sprint(i)), Header: nats.Header{"Latchkey-Key-Id": {anonKey}}})
		require.NoError(t, err)
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			require.NoError(t, err)
		case <-ctx.Done():
			t.Fatal("no ack")
		}
	}
	res, err := link.New(js, ns).Link(ctx, anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: n, Requests: n, StoredRequests: n}, res)
	got := linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns))
	require.Len(t, got, n)
	for i, g := range got {
		require.Equal(t, fmt.Sprint(i), string(g.Data))
	}
}

// TestLinkNothing: a key with no data kept links nothing, and that is no error.
func TestLinkNothing(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	linktest.PublishAnon(t, js, ns, otherKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("x")})
	res, err := link.New(js, ns).Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{}, res)
	require.Empty(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)))
}

// TestLinkExpiredDataIsGone: data past the anonymous stream's MaxAge (the type's data_ttl)
// is not linked or counted.
func TestLinkExpiredDataIsGone(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Second)
	linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("x")})
	st, err := js.Stream(linkCtx(t), natsx.AnonIngestStream(ns))
	require.NoError(t, err)
	testutil.Eventually(t, 10*time.Second, func() bool {
		info, err := st.Info(linkCtx(t))
		return err == nil && info.State.Msgs == 0
	}, "the anonymous data to expire")
	res, err := link.New(js, ns).Link(linkCtx(t), anonKey, target)
	require.NoError(t, err)
	require.Equal(t, link.Result{}, res)
}

// TestLinkNeedsBothStreams: with either stream missing Link fails, and publishes nothing
// when it is the ingest stream.
func TestLinkNeedsBothStreams(t *testing.T) {
	t.Run("no ingest stream", func(t *testing.T) {
		ns := testutil.Namespace(t)
		_, js := linktest.Connect(t)
		linktest.AnonStream(t, js, ns, time.Hour)
		linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("x")})
		_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target)
		require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
		require.ErrorContains(t, err, natsx.IngestStream(ns))
	})
	t.Run("no anonymous stream", func(t *testing.T) {
		ns := testutil.Namespace(t)
		_, js := linktest.Connect(t)
		linktest.IngestStream(t, js, ns)
		_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target)
		require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
		require.ErrorContains(t, err, natsx.AnonIngestStream(ns))
	})
}

// TestLinkRefusesBadNames: a key id or target that is not a subject token is an error, not
// a publish to some other subject.
func TestLinkRefusesBadNames(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	l := link.New(js, ns)
	_, err := l.Link(linkCtx(t), "key.*", target)
	require.Error(t, err)
	_, err = l.Link(linkCtx(t), anonKey, link.Target{AccountID: "acc>", ProjectID: "p", Environment: "e"})
	require.Error(t, err)
}

// TestLinkDisconnected: without a connection Link fails at once rather than buffering.
func TestLinkDisconnected(t *testing.T) {
	ns := testutil.Namespace(t)
	nc, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	nc.Close()
	_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
}
