package link_test

import (
	"context"
	"fmt"
	"strings"
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

var (
	target  = link.Target{AccountID: "acc_01TARGET", ProjectID: "prj_01TARGET", Environment: "dev"}
	attempt = link.Attempt{ID: "evt_01ATTEMPT"}
)

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
	res, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_first"})
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 4, Through: 4, Sequences: []uint64{1, 2, 3}}, res)

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
	for i, seq := range []uint64{1, 3, 4} { // the anonymous stream's sequences
		require.Equal(t, link.MsgID("evt_first", seq), got[i].Header.Get(jetstream.MsgIDHeader))
	}
	// The source is left as it was.
	require.Len(t, linktest.Messages(t, js, natsx.AnonIngestStream(ns), natsx.AnonIngestSubjects(ns)), 4)
}

// TestLinkSameAttemptStoresOnce: a publish nats re-sends within one attempt (here the same
// attempt linking the same range again) is stored once: JetStream's duplicate window drops
// it under the attempt's Nats-Msg-Id, and it is not counted as stored.
func TestLinkSameAttemptStoresOnce(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	for i := range 3 {
		linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: fmt.Sprint("req_", i), Payload: []byte{byte(i)}})
	}
	l := link.New(js, ns)
	first, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_once"})
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 3, Requests: 3, Through: 3, Sequences: []uint64{1, 2, 3}}, first)
	again, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_once"})
	require.NoError(t, err)
	require.Equal(t, link.Result{Duplicates: 3, Through: 3}, again)
	require.Len(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)), 3)
}

// TestLinkAfter: a Link from where an earlier one stopped (a claim's sweep: After = the
// claim's Through, under the claim's attempt id) stores only what reached the anonymous
// stream since, and counts the requests in it, a merged message counting each; with
// nothing new it stores nothing and its Through stays.
func TestLinkAfter(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("1")})
	l := link.New(js, ns)
	first, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_claim"})
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 1, Requests: 1, Through: 1, Sequences: []uint64{1}}, first)

	linktest.PublishAnon(t, js, ns, otherKey, "traces", linktest.Request{RequestID: "req_other", Payload: []byte("x")})
	linktest.PublishAnon(t, js, ns, anonKey, "logs",
		linktest.Request{RequestID: "req_2", Payload: []byte("2")}, linktest.Request{RequestID: "req_3", Payload: []byte("3")})
	sweep, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_claim", After: first.Through})
	require.NoError(t, err)
	require.Equal(t, link.Result{Messages: 1, Requests: 2, Through: 3, Sequences: []uint64{2}}, sweep)
	got := linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns))
	require.Len(t, got, 2)
	require.Equal(t, []string{"req_1"}, got[0].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"req_2", "req_3"}, got[1].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, link.MsgID("evt_claim", 3), got[1].Header.Get(jetstream.MsgIDHeader))

	none, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_sweep", After: sweep.Through})
	require.NoError(t, err)
	require.Equal(t, link.Result{Through: 3}, none)
	require.Len(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)), 2)
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
	res, err := link.New(js, ns).Link(ctx, anonKey, target, link.Attempt{ID: "evt_many"})
	require.NoError(t, err)
	require.Equal(t, int64(n), res.Messages)
	require.Equal(t, int64(n), res.Requests)
	require.Len(t, res.Sequences, n)
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
	res, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
	require.NoError(t, err)
	require.Equal(t, link.Result{Through: 1}, res, "the stream's last sequence, another key's")
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
	res, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
	require.NoError(t, err)
	require.Equal(t, link.Result{Through: 1}, res)
}

// TestLinkNeedsBothStreams: with either stream missing Link fails, and publishes nothing
// when it is the ingest stream.
func TestLinkNeedsBothStreams(t *testing.T) {
	t.Run("no ingest stream", func(t *testing.T) {
		ns := testutil.Namespace(t)
		_, js := linktest.Connect(t)
		linktest.AnonStream(t, js, ns, time.Hour)
		linktest.PublishAnon(t, js, ns, anonKey, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("x")})
		_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
		require.ErrorIs(t, err, jetstream.ErrStreamNotFound)
		require.ErrorContains(t, err, natsx.IngestStream(ns))
	})
	t.Run("no anonymous stream", func(t *testing.T) {
		ns := testutil.Namespace(t)
		_, js := linktest.Connect(t)
		linktest.IngestStream(t, js, ns)
		_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
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
	_, err := l.Link(linkCtx(t), "key.*", target, attempt)
	require.Error(t, err)
	_, err = l.Link(linkCtx(t), anonKey, link.Target{AccountID: "acc>", ProjectID: "p", Environment: "e"}, attempt)
	require.Error(t, err)
	for _, id := range []string{"", "evt 1", "evt\n1"} {
		_, err = l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: id})
		require.ErrorContains(t, err, "attempt id")
	}
	require.Empty(t, linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)))
	require.Error(t, err)
}

// TestLinkDisconnected: without a connection Link fails at once rather than buffering.
func TestLinkDisconnected(t *testing.T) {
	ns := testutil.Namespace(t)
	nc, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	nc.Close()
	_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
	require.ErrorIs(t, err, nats.ErrConnectionClosed)
}

// publishAnonMany publishes n one-request messages of anonKey on traces, request ids
// req_0… in order.
func publishAnonMany(t *testing.T, js jetstream.JetStream, ns string, n int) {
	t.Helper()
	subject, err := natsx.AnonSubject(ns, anonKey, "traces")
	require.NoError(t, err)
	ctx := linkCtx(t)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		f, err := js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: []byte(fmt.Sprint(i)), Header: nats.Header{
			"Latchkey-Key-Id": {anonKey}, "Latchkey-Request-Id": {fmt.Sprint("req_", i)},
		}})
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
}

// onTarget is, per request id, how many times it is on target's subjects.
func onTarget(t *testing.T, js jetstream.JetStream, ns string, to link.Target) map[string]int {
	t.Helper()
	one, err := natsx.IngestSubject(ns, to.AccountID, to.ProjectID, to.Environment, "traces")
	require.NoError(t, err)
	subjects := strings.TrimSuffix(one, "traces") + "*"
	count := map[string]int{}
	for _, m := range linktest.Messages(t, js, natsx.IngestStream(ns), subjects) {
		for _, id := range m.Header.Values("Latchkey-Request-Id") {
			count[id]++
		}
	}
	return count
}

// requireOnce checks that each of the n requests publishAnonMany sent is in count once.
func requireOnce(t *testing.T, count map[string]int, n int) {
	t.Helper()
	require.Len(t, count, n)
	for id, c := range count {
		require.Equal(t, 1, c, "request %s linked %d times", id, c)
	}
}

// TestLinkRefusedLeavesNothing: a Link that fails midway (the ingest stream full: it
// refuses every message past 100) deletes the copies it stored before it returns, so
// nothing is on the target; a retry, a new attempt, to the same target within the
// duplicate window then links every message exactly once (the deleted copies' ids are
// still in the window: a retry under them would lose their data), and the retry's copies
// carry its own id.
func TestLinkRefusedLeavesNothing(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	const n = 600
	publishAnonMany(t, js, ns, n)
	linktest.LimitIngest(t, js, ns, 100, false)
	l := link.New(js, ns)

	res, err := l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_refused"})
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr, "the stream's refusal")
	require.NotErrorIs(t, err, link.ErrCopiesRemain)
	require.ErrorContains(t, err, "the 100 copies stored were deleted again")
	require.Equal(t, link.Result{}, res)
	require.Empty(t, onTarget(t, js, ns, target), "a failed link leaves nothing")

	linktest.LimitIngest(t, js, ns, -1, false)
	res, err = l.Link(linkCtx(t), anonKey, target, link.Attempt{ID: "evt_retry"})
	require.NoError(t, err)
	require.Equal(t, int64(n), res.Requests)
	requireOnce(t, onTarget(t, js, ns, target), n)
	for _, m := range linktest.Messages(t, js, natsx.IngestStream(ns), natsx.IngestSubjects(ns)) {
		require.True(t, strings.HasPrefix(m.Header.Get(jetstream.MsgIDHeader), "claim-evt_retry-"), m.Header.Get(jetstream.MsgIDHeader))
	}
}

// TestLinkCancelledLeavesNothing: a Link whose context is cancelled after 50 copies were
// stored (a claim's client going away) stops, deletes every copy it stored, including
// those whose acks were still awaited, and returns the cancellation; a retry to another
// target then links everything there once and leaves the first target empty.
func TestLinkCancelledLeavesNothing(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	const n = 700
	publishAnonMany(t, js, ns, n)
	l := link.New(js, ns)
	ctx, cancel := context.WithCancel(linkCtx(t))
	defer cancel()
	link.OnStored(l, func(stored int64) {
		if stored == 50 {
			cancel()
		}
	})
	res, err := l.Link(ctx, anonKey, target, link.Attempt{ID: "evt_cancelled"})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, link.ErrCopiesRemain)
	require.ErrorContains(t, err, "copies stored were deleted again")
	require.Equal(t, link.Result{}, res)
	require.Empty(t, onTarget(t, js, ns, target))

	link.OnStored(l, nil)
	other := link.Target{AccountID: "acc_01OTHER", ProjectID: "prj_01OTHER", Environment: "prd"}
	res, err = l.Link(linkCtx(t), anonKey, other, link.Attempt{ID: "evt_other"})
	require.NoError(t, err)
	require.Equal(t, int64(n), res.Requests)
	requireOnce(t, onTarget(t, js, ns, other), n)
	require.Empty(t, onTarget(t, js, ns, target), "the data is in one place")
}

// TestLinkUndoFails: when the copies of a failed Link cannot be deleted (the stream
// refuses deletions) the error says so, wrapping ErrCopiesRemain with the count and the
// cause, and nothing panics.
func TestLinkUndoFails(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	publishAnonMany(t, js, ns, 30)
	linktest.LimitIngest(t, js, ns, 10, true)
	_, err := link.New(js, ns).Link(linkCtx(t), anonKey, target, attempt)
	require.ErrorIs(t, err, link.ErrCopiesRemain)
	var apiErr *jetstream.APIError
	require.ErrorAs(t, err, &apiErr, "the cause")
	require.ErrorContains(t, err, "10 of its 10 copies could not be deleted")
	require.Len(t, onTarget(t, js, ns, target), 10, "what the error says remains")
}

// TestUnlink: Unlink deletes what a Link stored (a claim that could not commit), and only
// that; a copy already gone counts as deleted; with the stream refusing deletions it
// wraps ErrCopiesRemain.
func TestUnlink(t *testing.T) {
	ns := testutil.Namespace(t)
	_, js := linktest.Connect(t)
	linktest.Streams(t, js, ns, time.Hour)
	publishAnonMany(t, js, ns, 5)
	l := link.New(js, ns)
	other := link.Target{AccountID: "acc_01OTHER", ProjectID: "prj_01OTHER", Environment: "prd"}
	kept, err := l.Link(linkCtx(t), anonKey, other, link.Attempt{ID: "evt_kept"})
	require.NoError(t, err)
	res, err := l.Link(linkCtx(t), anonKey, target, attempt)
	require.NoError(t, err)
	require.Len(t, onTarget(t, js, ns, target), 5)

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a claim whose client went away still undoes
	require.NoError(t, l.Unlink(ctx, res))
	require.Empty(t, onTarget(t, js, ns, target))
	requireOnce(t, onTarget(t, js, ns, other), 5)
	require.NoError(t, l.Unlink(linkCtx(t), res), "already gone")
	require.NoError(t, l.Unlink(linkCtx(t), link.Result{}))

	linktest.LimitIngest(t, js, ns, -1, true)
	err = l.Unlink(linkCtx(t), kept)
	require.ErrorIs(t, err, link.ErrCopiesRemain)
	require.ErrorContains(t, err, "5 of 5 copies could not be deleted")
}
