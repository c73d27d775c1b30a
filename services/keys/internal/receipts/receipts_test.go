package receipts

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

func publish(t *testing.T, nc *nats.Conn, subject string, m proto.Message) {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, nc.Publish(subject, b))
	require.NoError(t, nc.Flush())
}

// TestReceipts: confirmations of the live gateways complete a receipt; silence never does,
// neither before the tracker has heard a heartbeat window nor when it is cut off from NATS.
func TestReceipts(t *testing.T) {
	srv := testutil.StartNATS(t)
	ns := testutil.Namespace(t)
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	gw, err := nats.Connect(srv.URL)
	require.NoError(t, err)
	defer gw.Close()

	tr := New(nc, ns)
	sub, err := tr.Start()
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())

	w, err := tr.Watch("evt_early")
	require.NoError(t, err)
	r := w.Wait(context.Background(), 100*time.Millisecond)
	require.False(t, r.Complete(), "no live set is known yet: %+v", r)

	publish(t, gw, natsx.GatewayHeartbeatSubject(ns), &eventsv1.GatewayHeartbeat{GatewayId: "gw-1"})
	testutil.Eventually(t, 5*time.Second, func() bool { return tr.Known() && len(tr.Live()) == 1 }, "the gateway to be live")

	w, err = tr.Watch("evt_1")
	require.NoError(t, err)
	publish(t, gw, natsx.GatewayAppliedSubject(ns, "evt_1"), &eventsv1.GatewayApplied{GatewayId: "gw-1", EventId: "evt_1"})
	r = w.Wait(context.Background(), 5*time.Second)
	require.True(t, r.Complete(), "%+v", r)
	require.Equal(t, 1, r.Applied)

	w, err = tr.Watch("evt_2")
	require.NoError(t, err)
	r = w.Wait(context.Background(), 100*time.Millisecond)
	require.False(t, r.Complete(), "no confirmation, no receipt: %+v", r)

	srv.Stop()
	testutil.Eventually(t, 5*time.Second, func() bool { return !nc.IsConnected() }, "the tracker to lose NATS")
	require.False(t, tr.Known(), "cut off, the tracker cannot know who is live")
}

// TestReceiptsDuringWarmup: a receipt asked for before the tracker knows the live set
// waits for every gateway it hears from before the warmup ends, not only those heard when
// it was asked: a gateway that was following the stream all along may simply not have sent
// its first heartbeat yet.
func TestReceiptsDuringWarmup(t *testing.T) {
	ns := testutil.Namespace(t)
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	defer nc.Close()
	gw, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	defer gw.Close()

	tr := New(nc, ns)
	sub, err := tr.Start()
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())

	w, err := tr.Watch("evt_warm")
	require.NoError(t, err)
	done := make(chan Receipt, 1)
	go func() { done <- w.Wait(context.Background(), 10*time.Second) }()
	publish(t, gw, natsx.GatewayHeartbeatSubject(ns), &eventsv1.GatewayHeartbeat{GatewayId: "gw-late"})
	select {
	case r := <-done:
		t.Fatalf("complete without the gateway heard during the warmup: %+v", r)
	case <-time.After(warmup + 500*time.Millisecond):
	}
	publish(t, gw, natsx.GatewayAppliedSubject(ns, "evt_warm"), &eventsv1.GatewayApplied{GatewayId: "gw-late", EventId: "evt_warm"})
	r := <-done
	require.True(t, r.Complete(), "%+v", r)
	require.Equal(t, 1, r.Live)
	require.Equal(t, 1, r.Applied)
}

// TestReceiptsGatewayDropsOut: a gateway live when the wait began that stops heartbeating
// (it died, or lost the events stream and distrusts its cache) is not waited for past the
// live window; the gateways still live are (issue 11: receipts held to their timeout by
// gateways that had lost a NATS node).
func TestReceiptsGatewayDropsOut(t *testing.T) {
	ns := testutil.Namespace(t)
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	defer nc.Close()
	gw, err := nats.Connect(testutil.NATSURL())
	require.NoError(t, err)
	defer gw.Close()

	tr := New(nc, ns)
	tr.Window = time.Second
	sub, err := tr.Start()
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())
	beat := func(ids ...string) {
		for _, id := range ids {
			publish(t, gw, natsx.GatewayHeartbeatSubject(ns), &eventsv1.GatewayHeartbeat{GatewayId: id})
		}
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		beat("gw-stays", "gw-goes")
		return tr.Known() && len(tr.Live()) == 2
	}, "both gateways live")

	w, err := tr.Watch("evt_drop")
	require.NoError(t, err)
	done := make(chan Receipt, 1)
	go func() { done <- w.Wait(context.Background(), 10*time.Second) }()
	// gw-stays keeps beating but has not confirmed: no receipt, even once gw-goes has
	// dropped out of the live set.
	testutil.Eventually(t, 10*time.Second, func() bool {
		beat("gw-stays")
		return len(tr.Live()) == 1
	}, "gw-goes dropped out")
	select {
	case r := <-done:
		t.Fatalf("complete without the confirmation of a gateway still live: %+v", r)
	default:
	}
	publish(t, gw, natsx.GatewayAppliedSubject(ns, "evt_drop"), &eventsv1.GatewayApplied{GatewayId: "gw-stays", EventId: "evt_drop"})
	r := <-done
	require.True(t, r.Complete(), "%+v", r)
	require.Equal(t, 1, r.Live, "gw-goes dropped out")
	require.Equal(t, 1, r.Applied)
	require.Less(t, r.Waited, 5*time.Second)
}

// TestReceiptsRewarmAfterReconnect: heartbeats sent while the tracker was cut off are
// lost, so after a reconnect it does not know the live set until a warmup has passed.
func TestReceiptsRewarmAfterReconnect(t *testing.T) {
	srv := testutil.StartNATS(t)
	ns := testutil.Namespace(t)
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	tr := New(nc, ns)
	sub, err := tr.Start()
	require.NoError(t, err)
	defer sub.Unsubscribe()
	testutil.Eventually(t, 5*time.Second, tr.Known, "the warmup to end")

	srv.Restart(false)
	testutil.Eventually(t, 10*time.Second, nc.IsConnected, "the tracker to reconnect")
	require.False(t, tr.Known(), "just reconnected, the live set is not known")
	testutil.Eventually(t, 5*time.Second, tr.Known, "a new warmup to end")
}
