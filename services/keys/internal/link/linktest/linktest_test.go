package linktest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestStreamsAreTheGateways: the streams the keys service's tests link between are the
// gateway's own (natsx.IngestStreamConfigs), and anonymous data published as a gateway
// does reads back request by request, headers aligned with the payload.
func TestStreamsAreTheGateways(t *testing.T) {
	_, js := Connect(t)
	ns := testutil.Namespace(t)
	Streams(t, js, ns, 30*time.Second)
	ctx := context.Background()
	want, err := natsx.IngestStreamConfigs(ns, 24*time.Hour, 30*time.Second)
	require.NoError(t, err)
	for _, w := range want {
		st, err := js.Stream(ctx, w.Name)
		require.NoError(t, err)
		got := st.CachedInfo().Config
		require.Equal(t, w.Subjects, got.Subjects, w.Name)
		require.Equal(t, w.MaxAge, got.MaxAge, w.Name)
		require.Equal(t, w.Duplicates, got.Duplicates, w.Name)
		require.Equal(t, w.Storage, got.Storage, w.Name)
		require.Equal(t, w.Retention, got.Retention, w.Name)
	}

	seq := PublishAnon(t, js, ns, "key_a", "logs", Request{RequestID: "r1", Payload: []byte("ab")}, Request{RequestID: "r2", Payload: []byte("c")})
	require.Positive(t, seq)
	msgs := Messages(t, js, natsx.AnonIngestStream(ns), natsx.AnonKeySubjects(ns, "key_a"))
	require.Len(t, msgs, 1)
	require.Equal(t, ns+".anon.key_a.logs", msgs[0].Subject)
	require.Equal(t, []byte("abc"), msgs[0].Data)
	require.Equal(t, []string{"r1", "r2"}, msgs[0].Header.Values("Latchkey-Request-Id"))
	require.Equal(t, []string{"2", "1"}, msgs[0].Header.Values("Latchkey-Request-Size"))
	require.Equal(t, []string{"key_a", "key_a"}, msgs[0].Header.Values("Latchkey-Key-Id"))
}
