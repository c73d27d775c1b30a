package natsx_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// keeperFixture is a keeper of the events stream and a durable consumer on it, running on
// a nats-server of the test's own.
type keeperFixture struct {
	srv        *testutil.NATSServer
	js         jetstream.JetStream
	ns         string
	keeper     *natsx.Keeper
	recreated  atomic.Int32 // calls of the stream's Recreated hook
	consumers  atomic.Int32 // consumers the keeper created
	streamName string
}

func startKeeper(t *testing.T, every time.Duration) *keeperFixture {
	t.Helper()
	f := &keeperFixture{srv: testutil.StartNATS(t), ns: testutil.Namespace(t)}
	f.streamName = natsx.EventsStream(f.ns)
	nc, err := nats.Connect(f.srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	f.js, err = jetstream.New(nc)
	require.NoError(t, err)
	stream := natsx.EventsStreamResource(f.js, f.ns)
	stream.Recreated = func() { f.recreated.Add(1) }
	cons := natsx.ConsumerResource(f.js, f.streamName, jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy},
		func(jetstream.Consumer) { f.consumers.Add(1) })
	f.keeper = natsx.NewKeeper(f.js, zap.NewNop(), stream, cons)
	f.keeper.CheckEvery = every
	require.False(t, f.keeper.Ready(), "not ready before the first check")
	require.NoError(t, f.keeper.Ensure(t.Context()))
	require.True(t, f.keeper.Ready())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.keeper.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func (f *keeperFixture) streamExists(ctx context.Context) bool {
	_, err := f.js.Stream(ctx, f.streamName)
	return err == nil
}

func (f *keeperFixture) consumerExists(ctx context.Context) bool {
	_, err := f.js.Consumer(ctx, f.streamName, "d")
	return err == nil
}

// A publish to a deleted stream fails with an error Notice recognises; the keeper is not
// ready from then until it has made the stream and its consumer again, which it does at
// once (the hour-long period rules out the unprompted check).
func TestKeeperNoticeRecreatesDeletedStream(t *testing.T) {
	f := startKeeper(t, time.Hour)
	ctx := t.Context()
	require.NoError(t, f.js.DeleteStream(ctx, f.streamName))
	_, err := f.js.Publish(ctx, natsx.EventSubject(f.ns, "key.revoked"), []byte("x"))
	require.Error(t, err)
	require.True(t, natsx.Missing(err), "a publish with no stream: %v", err)
	require.True(t, f.keeper.Notice(err))
	require.False(t, f.keeper.Ready(), "not ready once something is known missing")
	testutil.Eventually(t, 5*time.Second, f.keeper.Ready, "the keeper to be ready again")
	require.True(t, f.streamExists(ctx))
	require.True(t, f.consumerExists(ctx))
	require.EqualValues(t, 1, f.recreated.Load(), "the stream's follower is told")
	require.EqualValues(t, 2, f.consumers.Load(), "the consumer is made again on the new stream")
	_, err = f.js.Publish(ctx, natsx.EventSubject(f.ns, "key.revoked"), []byte("x"))
	require.NoError(t, err)
	require.False(t, f.keeper.Notice(err))
	require.False(t, f.keeper.Notice(context.DeadlineExceeded), "only missing resources count")
}

// Unprompted, a periodic check finds a deleted durable consumer and makes it again.
func TestKeeperRecreatesDeletedConsumer(t *testing.T) {
	f := startKeeper(t, 20*time.Millisecond)
	ctx := t.Context()
	require.NoError(t, f.js.DeleteConsumer(ctx, f.streamName, "d"))
	testutil.Eventually(t, 5*time.Second, func() bool { return f.consumers.Load() == 2 && f.consumerExists(ctx) }, "the consumer to be made again")
	require.EqualValues(t, 0, f.recreated.Load(), "the stream is the same one")
}

// A stream that cannot be made (another stream holds its subjects) keeps the keeper not
// ready, for as long as that lasts.
func TestKeeperNotReadyUntilRecreated(t *testing.T) {
	f := startKeeper(t, 20*time.Millisecond)
	ctx := t.Context()
	require.NoError(t, f.js.DeleteStream(ctx, f.streamName))
	_, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUATTER_" + testutil.Suffix(), Subjects: []string{f.ns + ".events.>"}})
	require.NoError(t, err)
	testutil.Eventually(t, 5*time.Second, func() bool { return !f.keeper.Ready() }, "the keeper to see the stream gone")
	for range 5 { // several checks, each failing to create it
		before := f.consumers.Load()
		f.keeper.Kick()
		require.Error(t, f.keeper.Ensure(ctx))
		require.False(t, f.keeper.Ready())
		require.Equal(t, before, f.consumers.Load())
	}
	names := f.js.StreamNames(ctx)
	for n := range names.Name() {
		if n != f.streamName {
			require.NoError(t, f.js.DeleteStream(ctx, n))
		}
	}
	testutil.Eventually(t, 5*time.Second, f.keeper.Ready, "the keeper to be ready once it could make the stream")
	require.True(t, f.streamExists(ctx))
	require.True(t, f.consumerExists(ctx))
}

// A nats-server restarted on an empty store has lost every stream: the keeper is not ready
// after the reconnect until it has made them again.
func TestKeeperAfterWipedServer(t *testing.T) {
	f := startKeeper(t, time.Hour)
	f.srv.Restart(true)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return f.keeper.Ready() && f.streamExists(context.Background()) && f.consumerExists(context.Background())
	}, "streams and consumers made again after the reconnect")
	require.EqualValues(t, 1, f.recreated.Load())
}
