package audit_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

func eventsOf(accountID string, n int) ([]*auditv1.AuditEvent, []string) {
	evs := make([]*auditv1.AuditEvent, n)
	ids := make([]string, n)
	for i := range evs {
		evs[i] = event(accountID, time.Now().Add(time.Duration(i)*time.Microsecond))
		ids[i] = evs[i].GetId()
	}
	return evs, ids
}

// TestOutageDelaysEventsAndLosesNone: events handed over while the audit service is down
// are all stored, once, when a new one starts on the same database and stream.
func TestOutageDelaysEventsAndLosesNone(t *testing.T) {
	e := newEnv(t)
	a := e.accounts.api.SignUp("alice")
	before, want := eventsOf(a.AccountID, 100)
	e.publish(before...)
	e.waitStored(a.AccountID, len(want))

	e.audit.stop()
	during, ids := eventsOf(a.AccountID, 1500)
	want = append(want, ids...)
	e.publish(during...)
	e.publish(before[:50]...) // a relay retrying: JetStream drops them (same Nats-Msg-Id)
	require.Equal(t, 100, e.count(a.AccountID), "nothing is stored while the service is down")

	e.startAudit()
	e.waitStored(a.AccountID, len(want))
	e.waitDrained()
	e.requireChain(a.AccountID, want)
	ok, checked, bad := e.verify(a.Token)
	require.True(t, ok, bad)
	require.Equal(t, len(want), checked)
}

// TestReplicasNeverForkAChain: two audit services share the durable consumer and the
// database; with both able to consume and both taking Appends at once, every account's
// chain stays one line.
func TestReplicasNeverForkAChain(t *testing.T) {
	e := newEnv(t)
	cfg := e.cfg
	second := run(t, "audit", func(ctx context.Context, log *zap.Logger) (*server.Unit, error) {
		return audit.New(ctx, cfg, log)
	})
	conn, err := grpc.NewClient(second.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	clients := []auditv1.AuditServiceClient{e.client, auditv1.NewAuditServiceClient(conn)}
	a, b := e.accounts.api.SignUp("alice"), e.accounts.api.SignUp("bob")
	want := map[string][]string{}
	var published []*auditv1.AuditEvent
	for i := range 3000 {
		acc := []string{a.AccountID, b.AccountID, ""}[i%3]
		ev := event(acc, time.Now())
		published = append(published, ev)
		want[acc] = append(want[acc], ev.GetId())
	}
	var appended sync.Map
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := auth.OutgoingBearer(context.Background(), e.operator)
			for i := range 50 {
				acc := []string{a.AccountID, b.AccountID}[(w+i)%2]
				ev := event(acc, time.Now())
				resp, err := clients[(w+i)%2].Append(ctx, &auditv1.AppendRequest{Event: ev})
				if err != nil || !resp.GetStored() {
					t.Errorf("append: %v %v", resp, err)
					return
				}
				appended.Store(ev.GetId(), acc)
			}
		}()
	}
	e.publish(published...)
	wg.Wait()
	appended.Range(func(id, acc any) bool {
		want[acc.(string)] = append(want[acc.(string)], id.(string))
		return true
	})
	for acc, ids := range want {
		e.waitStored(acc, len(ids))
	}
	e.waitDrained()
	for acc, ids := range want {
		e.requireChain(acc, ids)
	}
}

// TestStoreFailureDelaysEvents: while batches cannot be stored (here: the writer role
// loses INSERT), nothing is acknowledged and nothing is lost; once the database takes
// writes again, every event arrives, once, in one chain.
func TestStoreFailureDelaysEvents(t *testing.T) {
	e := newEnv(t)
	a := e.accounts.api.SignUp("alice")
	ctx := context.Background()
	_, err := e.super.Exec(ctx, `REVOKE INSERT ON audit.events FROM `+store.WriterRole)
	require.NoError(t, err)
	evs, want := eventsOf(a.AccountID, 300)
	e.publish(evs...)
	testutil.Eventually(t, 30*time.Second, func() bool {
		c, err := e.js.Consumer(ctx, natsx.AuditStream(e.ns), "audit")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumRedelivered > 0
	}, "a failed batch to be handed back and redelivered")
	require.Zero(t, e.count(a.AccountID))
	var headCount int
	require.NoError(t, e.super.QueryRow(ctx, `SELECT count(*) FROM audit.chain_heads`).Scan(&headCount))
	require.Zero(t, headCount, "a failed batch leaves no trace: the chain head rolled back with it")

	_, err = e.super.Exec(ctx, `GRANT INSERT ON audit.events TO `+store.WriterRole)
	require.NoError(t, err)
	e.waitStored(a.AccountID, len(want))
	e.waitDrained()
	e.requireChain(a.AccountID, want)
}

// TestConsumerAndStreamComeBack: when the durable consumer, or the whole stream, is
// deleted under a running service, it sets them up again and goes on storing.
func TestConsumerAndStreamComeBack(t *testing.T) {
	e := newEnv(t)
	a := e.accounts.api.SignUp("alice")
	ctx := context.Background()
	first, want := eventsOf(a.AccountID, 10)
	e.publish(first...)
	e.waitStored(a.AccountID, len(want))

	require.NoError(t, e.js.DeleteConsumer(ctx, natsx.AuditStream(e.ns), "audit"))
	second, ids := eventsOf(a.AccountID, 10)
	want = append(want, ids...)
	e.publish(second...)
	e.waitStored(a.AccountID, len(want))

	require.NoError(t, e.js.DeleteStream(ctx, natsx.AuditStream(e.ns)))
	testutil.Eventually(t, 60*time.Second, func() bool {
		_, err := e.js.Consumer(ctx, natsx.AuditStream(e.ns), "audit")
		return err == nil
	}, "the stream and consumer to be set up again")
	third, ids := eventsOf(a.AccountID, 10)
	want = append(want, ids...)
	e.publish(third...)
	e.waitStored(a.AccountID, len(want))
	e.requireChain(a.AccountID, want)
}
