package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/outbox"
	"github.com/latchkey/latchkey/pkg/testutil"
)

func revoked(keyID string) *eventsv1.Event {
	ev := events.New("acc_test", "req_test")
	ev.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: keyID}}
	return ev
}

func write(t *testing.T, pool *pgxpool.Pool, ns string, evs ...*eventsv1.Event) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		for _, ev := range evs {
			if err := outbox.Add(context.Background(), tx, ns, ev); err != nil {
				return err
			}
		}
		return nil
	}))
}

func pending(t *testing.T, pool *pgxpool.Pool) int {
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&n))
	return n
}

// TestRelaySurvivesNATSOutage: events written while NATS is down are published once it is
// back, each exactly once, and nothing is marked published before JetStream acknowledged it.
func TestRelaySurvivesNATSOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := testutil.StartNATS(t)
	ns := testutil.Namespace(t)
	pool := testutil.DB(t, "outboxtest", outbox.Migrations)
	nc, err := natsx.Connect(srv.URL, "outbox-test", zap.NewNop())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := natsx.EnsureEventsStream(ctx, js, ns)
	require.NoError(t, err)

	relay := outbox.NewRelay(pool, js, zap.NewNop())
	relay.Poll = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	count := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	write(t, pool, ns, revoked("key_1"), revoked("key_2"))
	relay.Notify()
	testutil.Eventually(t, 5*time.Second, func() bool { return count() == 2 }, "the first two events in the stream")
	// JetStream acks before the relay's commit marks the rows: wait for that too.
	testutil.Eventually(t, 5*time.Second, func() bool { return pending(t, pool) == 0 }, "the first two marked published")

	srv.Stop()
	testutil.Eventually(t, 5*time.Second, func() bool { return !nc.IsConnected() }, "the client to notice")
	write(t, pool, ns, revoked("key_3"), revoked("key_4"), revoked("key_5"))
	relay.Notify()
	require.Equal(t, 3, pending(t, pool), "nothing is marked published while NATS is down")

	srv.Start()
	testutil.Eventually(t, 10*time.Second, func() bool { return pending(t, pool) == 0 }, "the outbox to drain after NATS returns")
	testutil.Eventually(t, 5*time.Second, func() bool { return count() == 5 }, "five events in the stream")
	var setAside int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL").Scan(&setAside))
	require.Zero(t, setAside, "an outage sets nothing aside")
	cancel()
	require.NoError(t, <-done)
}

// TestRetriedPublishIsStoredOnce: when an ack is lost and the relay publishes an event
// again, the Nats-Msg-Id makes JetStream keep one copy.
func TestRetriedPublishIsStoredOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := testutil.Namespace(t)
	pool := testutil.DB(t, "outboxtest", outbox.Migrations)
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := natsx.EnsureEventsStream(ctx, js, ns)
	require.NoError(t, err)

	ev := revoked("key_dup")
	write(t, pool, ns, ev)
	// The first attempt reached JetStream but its ack was lost: the row is still pending.
	msg := &nats.Msg{Subject: natsx.EventSubject(ns, "key.revoked"), Data: []byte("first attempt"), Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.GetId())
	_, err = js.PublishMsg(ctx, msg)
	require.NoError(t, err)

	relay := outbox.NewRelay(pool, js, zap.NewNop())
	go func() { _ = relay.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, func() bool { return pending(t, pool) == 0 }, "the relay to publish")
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Msgs)
}
