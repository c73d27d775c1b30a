package natsx_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestEnsureWithin: a service starting while JetStream cannot make its streams yet (NATS
// down, a cluster still forming) waits for them, and once its wait is over gets an error
// that names the setting and the cause, never a panic (issue 11, fault b).
func TestEnsureWithin(t *testing.T) {
	srv := testutil.StartNATS(t)
	ns := testutil.Namespace(t)
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	t.Run("waits while NATS is down", func(t *testing.T) {
		srv.Stop()
		k := natsx.NewKeeper(js, zap.NewNop(), natsx.EventsStreamResource(js, ns))
		done := make(chan error, 1)
		go func() { done <- k.EnsureWithin(context.Background(), 30*time.Second) }()
		// Still waiting once the client knows NATS is gone, and for a while after.
		testutil.Eventually(t, 10*time.Second, func() bool { return !nc.IsConnected() }, "the client saw NATS go")
		require.Never(t, func() bool { return len(done) > 0 }, time.Second, 20*time.Millisecond, "returned while NATS was down")
		srv.Start()
		require.NoError(t, <-done)
		require.True(t, k.Ready())
	})

	t.Run("gives up with a clear error", func(t *testing.T) {
		// Three replicas on a single server: JetStream can never place the stream.
		r3 := natsx.Replicated(js, 3)
		k := natsx.NewKeeper(r3, zap.NewNop(), natsx.AuditStreamResource(r3, ns))
		began := time.Now()
		err := k.EnsureWithin(context.Background(), 1500*time.Millisecond)
		require.Error(t, err)
		require.Less(t, time.Since(began), 10*time.Second)
		require.Contains(t, err.Error(), "not in place within 1.5s (LATCHKEY_STREAM_WAIT)")
		require.Contains(t, err.Error(), "LATCHKEY_STREAM_REPLICAS")
		require.Contains(t, err.Error(), natsx.AuditStream(ns))
		require.False(t, k.Ready())
	})
}
