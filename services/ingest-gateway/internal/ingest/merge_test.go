package ingest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/pkg/natsx"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

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

// publishConcurrently publishes n requests for each of three keys at once (two of them
// for one subject), each one span named after its request id, requires every one to
// succeed, and returns the stream's messages and the request ids.
func publishConcurrently(t *testing.T, e *env, n int) ([]*jetstream.RawStreamMsg, map[string]string) {
	t.Helper()
	ids, errs := publishAll(t, e, n)
	for id, err := range errs {
		require.NoError(t, err, id)
	}
	return e.messages(t, natsx.IngestStream(e.ns)), ids
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

// Headers count against NATS's max_payload too: many small requests on a server with a
// small limit all go through, in shared messages.
func TestMergeCountsHeadersAgainstMaxPayload(t *testing.T) {
	srv := testutil.StartNATS(t, "max_payload: 16384")
	e := newEnv(t, srv.URL)
	msgs, ids := publishConcurrently(t, e, 200)
	requireEachStoredOnce(t, msgs, ids)
	require.True(t, slices.ContainsFunc(msgs, func(m *jetstream.RawStreamMsg) bool {
		return len(m.Header.Values(HeaderRequestID)) > 1
	}), "requests were merged")
}

// held is a Publisher whose lane for a subject is held as if a message were in flight, so
// a test decides when batches go.
type held struct {
	t       *testing.T
	e       *env
	subject string
	lane    *lane
}

func holdLane(t *testing.T, e *env) *held {
	t.Helper()
	subject, err := Subject(e.ns, goodGrant, Traces)
	require.NoError(t, err)
	l := &lane{busy: true}
	e.pub.mu.Lock()
	e.pub.lanes[subject] = l
	e.pub.mu.Unlock()
	return &held{t: t, e: e, subject: subject, lane: l}
}

// publish starts a request of goodGrant with a one-span payload named id and waits until
// it has joined a batch; its outcome comes on the channel.
func (h *held) publish(ctx context.Context, id string, supplied bool) <-chan error {
	h.t.Helper()
	before := h.queued()
	payload := encodeProto(h.t, ptraceotlp.NewExportRequestFromTraces(namedSpan(id)))
	out := make(chan error, 1)
	go func() { out <- h.e.pub.Publish(requestid.With(ctx, id, supplied), goodGrant, Traces, payload) }()
	if !supplied || h.e.pub.mergeClientRequestIDs {
		testutil.Eventually(h.t, 5*time.Second, func() bool { return h.queued() == before+1 }, id+" to join a batch")
	}
	return out
}

// queued counts the requests in the held lane's batches.
func (h *held) queued() int {
	h.e.pub.mu.Lock()
	defer h.e.pub.mu.Unlock()
	n := 0
	for _, b := range h.lane.queue {
		n += len(b.parts)
	}
	return n
}

// release lets the held message's ack arrive: the batches go, one after another.
func (h *held) release() { h.e.pub.release(h.subject, h.lane) }

func (h *held) requestIDs() [][]string {
	var out [][]string
	for _, m := range h.e.messages(h.t, natsx.IngestStream(h.e.ns)) {
		out = append(out, m.Header.Values(HeaderRequestID))
	}
	return out
}

// A request whose client gives up before its batch is sent is cut out of it: the client
// was told it failed, so it must not be stored, to come again with the retry.
func TestMergeDropsARequestWhoseClientGaveUp(t *testing.T) {
	e := newEnv(t, "")
	h := holdLane(t, e)
	leader := h.publish(context.Background(), "r-leader", false)
	ctx, cancel := context.WithCancel(context.Background())
	quitter := h.publish(ctx, "r-quitter", false)
	stayer := h.publish(context.Background(), "r-stayer", false)
	cancel()
	require.Error(t, <-quitter)

	h.release()
	require.NoError(t, <-leader)
	require.NoError(t, <-stayer)
	msgs := e.messages(t, natsx.IngestStream(e.ns))
	requireEachStoredOnce(t, msgs, map[string]string{"r-leader": "key_good", "r-stayer": "key_good"})
	require.Equal(t, [][]string{{"r-leader", "r-stayer"}}, h.requestIDs())
	testutil.Eventually(t, 5*time.Second, func() bool {
		e.pub.mu.Lock()
		defer e.pub.mu.Unlock()
		return len(e.pub.lanes) == 0
	}, "the lane to be freed")
}

// When a batch is full the next one queues behind it, and they go in order, one message
// in flight per subject.
func TestMergeQueuesBatchesInOrder(t *testing.T) {
	e := newEnv(t, "")
	e.pub.maxRequests = 2
	h := holdLane(t, e)
	var results []<-chan error
	for i := range 5 {
		results = append(results, h.publish(context.Background(), fmt.Sprintf("r-%d", i), false))
	}
	h.release()
	for _, r := range results {
		require.NoError(t, <-r)
	}
	require.Equal(t, [][]string{{"r-0", "r-1"}, {"r-2", "r-3"}, {"r-4"}}, h.requestIDs())
}

// A request id the client chose means its request is sent alone, whatever the lane, so
// JetStream can deduplicate a retry; with MergeClientRequestIDs it merges like any other.
func TestMergeClientRequestIDs(t *testing.T) {
	e := newEnv(t, "")
	h := holdLane(t, e)
	require.NoError(t, <-h.publish(context.Background(), "r-client-1", true), "sent while the lane is held")
	msgs := e.messages(t, natsx.IngestStream(e.ns))
	require.Len(t, msgs, 1)
	require.NotEmpty(t, msgs[0].Header.Get(jetstream.MsgIDHeader))

	e = newEnv(t, "")
	e.pub.mergeClientRequestIDs = true
	h = holdLane(t, e)
	first := h.publish(context.Background(), "r-client-1", true)
	second := h.publish(context.Background(), "r-client-2", true)
	h.release()
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	require.Equal(t, [][]string{{"r-client-1", "r-client-2"}}, h.requestIDs())
	require.Empty(t, e.messages(t, natsx.IngestStream(e.ns))[0].Header.Get(jetstream.MsgIDHeader))
}

// Sealing keeps exactly the parts nobody dropped, bytes and headers in the same order,
// whatever was dropped (never the leader, the first part).
func TestSealKeepsWhatWasNotDropped(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := &batch{payload: getBuffer()}
		var want []byte
		var wantParts []part
		for i := range 1 + rng.IntN(20) {
			data := bytes.Repeat([]byte{byte(i)}, 1+rng.IntN(50))
			pt := part{keyID: "k", requestID: fmt.Sprint("r", i), size: len(data), dropped: i > 0 && rng.IntN(3) == 0}
			b.payload.Write(data)
			b.parts = append(b.parts, pt)
			if !pt.dropped {
				want = append(want, data...)
				wantParts = append(wantParts, pt)
			}
		}
		b.seal()
		require.Equal(t, want, b.payload.Bytes())
		require.Equal(t, wantParts, b.parts)
		putBuffer(b.payload)
	}
}
