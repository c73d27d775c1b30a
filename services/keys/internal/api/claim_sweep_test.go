package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/keys/internal/link/linktest"
)

// stragglerID is the request id of the request a gateway peer stores on the anonymous
// subject after the claim's linking.
const stragglerID = "req_straggler"

// claimSweepWait is the keys service's bound on a sweep's wait for gateways (api's
// claimSweepWait): an answer that took as long waited for the sweep.
const claimSweepWait = 2 * time.Second

// gatewayPeer acts as one ingest gateway of the suite's namespace over the real NATS, as
// eventsub does: it sends a GatewayHeartbeat on natsx.GatewayHeartbeatSubject every 200ms
// until the test ends, so the keys service counts it live; and on each key.claimed event,
// like a gateway that still had the anonymous key cached and filed one more request of it
// before applying the event, it stores a straggler (stragglerID) on the key's traces
// subject of the anonymous stream and only then, if confirm, publishes its GatewayApplied
// on natsx.GatewayAppliedSubject. The channel receives, per event, the error of storing
// the straggler (nil once it is stored).
func (s *suite) gatewayPeer(id string, confirm bool) <-chan error {
	s.t.Helper()
	nc, js := linktest.Connect(s.t)
	stored := make(chan error, 4)
	sub, err := nc.Subscribe(natsx.EventSubject(s.ns, "key.claimed"), func(m *nats.Msg) {
		ev := &eventsv1.Event{}
		if err := proto.Unmarshal(m.Data, ev); err != nil {
			stored <- err
			return
		}
		err := storeStraggler(js, s.ns, ev.GetKeyClaimed().GetAnonymousKeyId())
		stored <- err
		if err != nil || !confirm {
			return
		}
		applied, _ := proto.Marshal(&eventsv1.GatewayApplied{GatewayId: id, EventId: ev.GetId()})
		_ = nc.Publish(natsx.GatewayAppliedSubject(s.ns, ev.GetId()), applied)
	})
	require.NoError(s.t, err)
	beat := func() error {
		hb, _ := proto.Marshal(&eventsv1.GatewayHeartbeat{GatewayId: id})
		return nc.Publish(natsx.GatewayHeartbeatSubject(s.ns), hb)
	}
	require.NoError(s.t, beat())
	require.NoError(s.t, nc.Flush()) // subscribed, and heard from, before any claim
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = beat()
			}
		}
	}()
	s.t.Cleanup(func() { // before the connection closes (cleanups run last first)
		close(stop)
		<-done
		_ = sub.Unsubscribe()
	})
	return stored
}

// storeStraggler publishes what a gateway would for one request of anonymous key keyID.
func storeStraggler(js jetstream.JetStream, ns, keyID string) error {
	subject, err := natsx.AnonSubject(ns, keyID, "traces")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte("late"), Header: nats.Header{
		"Latchkey-Key-Id": {keyID}, "Latchkey-Request-Id": {stragglerID}, "Latchkey-Request-Size": {"4"},
	}})
	return err
}

// awaitStraggler waits for a gateway peer to have stored its straggler.
func awaitStraggler(t *testing.T, stored <-chan error) {
	t.Helper()
	select {
	case err := <-stored:
		require.NoError(t, err, "storing the straggler")
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway peer saw no key.claimed event")
	}
}

// requestsLinked waits until the suite's ingest stream holds want messages and returns, per
// request id, how many times it is there and on which subject.
func (s *suite) requestsLinked(js jetstream.JetStream, want int) (count map[string]int, subject map[string]string) {
	s.t.Helper()
	var got []linktest.Stored
	testutil.Eventually(s.t, 10*time.Second, func() bool {
		got = s.ingested(js)
		return len(got) >= want
	}, fmt.Sprintf("%d messages on the account's subjects", want))
	require.Len(s.t, got, want, "nothing stored twice")
	count, subject = map[string]int{}, map[string]string{}
	for _, m := range got {
		for _, id := range m.Header.Values("Latchkey-Request-Id") {
			count[id]++
			subject[id] = m.Subject
		}
	}
	return count, subject
}

// TestClaimKeySweepsStragglers: a live gateway that, on key.claimed, stores one more request
// of the anonymous key on the anonymous subject before it confirms the event does not
// strand it: the claim's sweep waits for its confirmation and links the straggler to the
// account's subject, once, and stores nothing linked before again. messages_linked, in the
// answer and the audit event alike, counts what was linked before the commit.
func TestClaimKeySweepsStragglers(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	stored := s.gatewayPeer("gw-confirms", true)
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	linktest.PublishAnon(t, js, s.ns, anonID, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("1")})
	linktest.PublishAnon(t, js, s.ns, anonID, "metrics",
		linktest.Request{RequestID: "req_2", Payload: []byte("2")}, linktest.Request{RequestID: "req_3", Payload: []byte("3")})
	owner := s.SignUp("sweeping-claimer")
	project := s.Project(owner.Token)

	r := s.Must(200, s.claim(owner.Token, anonSecret, project, "dev"))
	require.Equal(t, float64(3), r.Get("claimed.messages_linked"), "linked before the commit")
	awaitStraggler(t, stored)

	count, subject := s.requestsLinked(js, 3)
	require.Equal(t, map[string]int{"req_1": 1, "req_2": 1, "req_3": 1, stragglerID: 1}, count)
	traces, err := natsx.IngestSubject(s.ns, owner.AccountID, project, "dev", "traces")
	require.NoError(t, err)
	require.Equal(t, traces, subject[stragglerID])
	ev, _ := s.findAudit(js, owner.AccountID, func(ev *auditv1.AuditEvent) bool { return ev.GetAction() == "keys.claim" })
	require.Equal(t, "3", ev.GetDetails()["messages_linked"], "as in the answer")
}

// TestClaimKeySweepUnconfirmed: a live gateway that never confirms key.claimed holds the
// sweep back for its bound only: the straggler it stored is linked all the same, once.
func TestClaimKeySweepUnconfirmed(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	stored := s.gatewayPeer("gw-silent", false)
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	linktest.PublishAnon(t, js, s.ns, anonID, "logs", linktest.Request{RequestID: "req_1", Payload: []byte("1")})
	owner := s.SignUp("unconfirmed-claimer")
	project := s.Project(owner.Token)

	r := s.Must(200, s.claim(owner.Token, anonSecret, project, "prd"))
	require.Equal(t, float64(1), r.Get("claimed.messages_linked"))
	awaitStraggler(t, stored)
	count, subject := s.requestsLinked(js, 2)
	require.Equal(t, map[string]int{"req_1": 1, stragglerID: 1}, count)
	require.True(t, strings.HasPrefix(subject[stragglerID], s.ns+".ingest."+owner.AccountID+"."+project+".prd."), subject[stragglerID])
}

// TestClaimKeySweepWithoutGateways: with no live gateway the claim answers without waiting
// for the sweep, and the sweep still runs: a request stored on the anonymous subject after
// the linking and before the commit (held here by a lock on the outbox, which the commit
// writes to) is linked to the account after the answer, once.
func TestClaimKeySweepWithoutGateways(t *testing.T) {
	s := startSuite(t)
	js := s.ingestStreams()
	anon := s.mintAnonymous()
	anonID, anonSecret := anon.Str("key.id"), anon.Str("secret")
	linktest.PublishAnon(t, js, s.ns, anonID, "traces", linktest.Request{RequestID: "req_1", Payload: []byte("1")})
	owner := s.SignUp("lonely-claimer")
	project := s.Project(owner.Token)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	hold, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = hold.Rollback(context.Background()) }()
	// Writes to the outbox wait for this transaction; reads do not.
	_, err = hold.Exec(ctx, `LOCK TABLE keys.outbox IN EXCLUSIVE MODE`)
	require.NoError(t, err)

	replies := make(chan testutil.Reply, 1)
	go func() { replies <- s.claim(owner.Token, anonSecret, project, "dev") }()
	testutil.Eventually(t, 10*time.Second, func() bool { return len(s.ingested(js)) == 1 }, "the claim to link")
	linktest.PublishAnon(t, js, s.ns, anonID, "traces", linktest.Request{RequestID: stragglerID, Payload: []byte("late")})
	released := time.Now()
	require.NoError(t, hold.Rollback(ctx))

	var r testutil.Reply
	select {
	case r = <-replies:
	case <-time.After(20 * time.Second):
		t.Fatal("the claim did not answer")
	}
	answered := time.Since(released)
	s.Must(200, r)
	require.Equal(t, float64(1), r.Get("claimed.messages_linked"))
	require.Less(t, answered, claimSweepWait, "the answer waited for the sweep")

	count, subject := s.requestsLinked(js, 2)
	require.Equal(t, map[string]int{"req_1": 1, stragglerID: 1}, count)
	require.True(t, strings.HasPrefix(subject[stragglerID], s.ns+".ingest."+owner.AccountID+"."+project+".dev."), subject[stragglerID])
}

// TestClaimKeySweepShutdown: a service stopped while a claim's sweep waits for a gateway
// that will never confirm does not wait out the sweep's bound: the sweep links at once and
// the service stops cleanly.
func TestClaimKeySweepShutdown(t *testing.T) {
	s := startSuite(t)
	s.ingestStreams()
	stored := s.gatewayPeer("gw-never-confirms", false)
	owner := s.SignUp("stopping-claimer")
	project := s.Project(owner.Token)
	s.Must(200, s.claim(owner.Token, s.mintAnonymous().Str("secret"), project, "dev"))
	awaitStraggler(t, stored) // key.claimed is out: the sweep waits for the peer now
	start := time.Now()
	s.stop()
	took := time.Since(start)
	t.Logf("stopped in %s", took)
	require.Less(t, took, claimSweepWait/2, "the shutdown waited out the sweep's bound")
}
