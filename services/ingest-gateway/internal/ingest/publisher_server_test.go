package ingest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
)

// TestServerIDHeader: each stored request carries its collector key's server in
// Latchkey-Server-Id, one value per request aligned with Latchkey-Key-Id, NoServer ("-")
// for a request of a key without a server; a message with no collector key's request has
// no such header.
func TestServerIDHeader(t *testing.T) {
	e := newEnv(t, "")
	// Over HTTP, alone: a collector key's request names its server; another key's none.
	r := e.post(t, "/v1/traces", strings.NewReader(string(encodeProto(t, ptraceotlp.NewExportRequestFromTraces(namedSpan("c-1"))))),
		map[string]string{"Authorization": "Bearer collector", "Content-Type": "application/x-protobuf", "X-Request-Id": "c-1"})
	require.Equal(t, 200, r.status, string(r.body))
	r = e.post(t, "/v1/traces", strings.NewReader(string(encodeProto(t, ptraceotlp.NewExportRequestFromTraces(namedSpan("g-1"))))),
		map[string]string{"Authorization": "Bearer good", "Content-Type": "application/x-protobuf", "X-Request-Id": "g-1"})
	require.Equal(t, 200, r.status, string(r.body))
	c := e.byRequestID(t, natsx.IngestStream(e.ns), "c-1")
	require.Len(t, c, 1)
	require.Equal(t, []string{collectorGrant.ServerID}, c[0].Header.Values(HeaderServerID))
	require.Equal(t, []string{"key_collector"}, c[0].Header.Values(HeaderKeyID))
	require.True(t, strings.HasSuffix(c[0].Subject, ".acc_1.prj_1._.traces"), c[0].Subject)
	g := e.byRequestID(t, natsx.IngestStream(e.ns), "g-1")
	require.Len(t, g, 1)
	_, has := g[0].Header[HeaderServerID]
	require.False(t, has, "no server, no header")

	// Merged: requests of two servers and of a key of none share a message; the values
	// follow the requests.
	e = newEnv(t, "")
	other := collectorGrant
	other.KeyID, other.ServerID = "key_collector2", "srv_01jz0000000000000000000001"
	plain := collectorGrant
	plain.KeyID, plain.ServerID, plain.KeyType = "key_plain", "", "ingest"
	subject, err := Subject(e.ns, collectorGrant, Traces)
	require.NoError(t, err)
	l := &lane{busy: true} // as if a message of the subject were in flight
	e.pub.mu.Lock()
	e.pub.lanes[subject] = l
	e.pub.mu.Unlock()
	queued := func() int {
		e.pub.mu.Lock()
		defer e.pub.mu.Unlock()
		n := 0
		for _, b := range l.queue {
			n += len(b.parts)
		}
		return n
	}
	var results []<-chan error
	for i, g := range []grant.Grant{collectorGrant, plain, other, plain, collectorGrant} {
		id := "m-" + string(rune('a'+i))
		out := make(chan error, 1)
		payload := encodeProto(t, ptraceotlp.NewExportRequestFromTraces(namedSpan(id)))
		go func() { out <- e.pub.Publish(requestid.With(context.Background(), id, false), g, Traces, payload) }()
		require.Eventually(t, func() bool { return queued() == i+1 }, 5*time.Second, time.Millisecond, id+" to join the batch")
		results = append(results, out)
	}
	e.pub.release(subject, l)
	for _, r := range results {
		require.NoError(t, <-r)
	}
	msgs := e.messages(t, natsx.IngestStream(e.ns))
	require.Len(t, msgs, 1)
	h := msgs[0].Header
	require.Equal(t, []string{"m-a", "m-b", "m-c", "m-d", "m-e"}, h.Values(HeaderRequestID))
	require.Equal(t, []string{"key_collector", "key_plain", "key_collector2", "key_plain", "key_collector"}, h.Values(HeaderKeyID))
	require.Equal(t, []string{collectorGrant.ServerID, NoServer, other.ServerID, NoServer, collectorGrant.ServerID}, h.Values(HeaderServerID))
}
