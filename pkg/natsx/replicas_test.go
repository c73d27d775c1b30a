package natsx_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestReplicated: every stream a service keeps is made on LATCHKEY_STREAM_REPLICAS
// servers. On the single test server, 1 makes an R1 stream, and 3 reaches JetStream,
// which refuses it (one server cannot hold three copies), the same call the prod overlay
// makes on its 3-node cluster; a configuration naming its own Replicas keeps them.
func TestReplicated(t *testing.T) {
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ns := testutil.Namespace(t)
	ctx := t.Context()

	s, err := natsx.EnsureEventsStream(ctx, natsx.Replicated(js, 1), ns)
	require.NoError(t, err)
	require.Equal(t, 1, s.CachedInfo().Config.Replicas)

	_, err = natsx.EnsureAuditStream(ctx, natsx.Replicated(js, 3), ns)
	require.Error(t, err, "R3 on one server")
	_, err = js.Stream(ctx, natsx.AuditStream(ns))
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)

	cfg := jetstream.StreamConfig{Name: natsx.AuditStream(ns), Subjects: []string{ns + ".audit.>"}, Replicas: 1}
	for _, create := range []func() (jetstream.Stream, error){
		func() (jetstream.Stream, error) { return natsx.Replicated(js, 3).CreateStream(ctx, cfg) },
		func() (jetstream.Stream, error) { return natsx.Replicated(js, 3).UpdateStream(ctx, cfg) },
	} {
		s, err = create()
		require.NoError(t, err)
		require.Equal(t, 1, s.CachedInfo().Config.Replicas)
	}
}
