package audit_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// storedChain reads an account's stored chain, in sequence order, as the superuser.
func (e *env) storedChain(accountID string) []store.Event {
	e.t.Helper()
	rows, err := e.super.Query(context.Background(), `SELECT id, sequence, prev_hash, hash, occurred_at, account_id,
		actor_type, actor_id, key_id, action, resource_type, resource_id, result, request_id, client_ip, user_agent, details
		FROM audit.events WHERE account_id = $1 ORDER BY sequence`, accountID)
	require.NoError(e.t, err)
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var ev store.Event
		require.NoError(e.t, rows.Scan(&ev.ID, &ev.Sequence, &ev.PrevHash, &ev.Hash, &ev.Time, &ev.AccountID,
			&ev.ActorType, &ev.ActorID, &ev.KeyID, &ev.Action, &ev.ResourceType, &ev.ResourceID, &ev.Result,
			&ev.RequestID, &ev.ClientIP, &ev.UserAgent, &ev.Details))
		out = append(out, ev)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// requireChain asserts the account's chain is exactly ids, linked from the first event on:
// sequence 1..n, prev_hash the hash before (Genesis first), each hash its content's.
func (e *env) requireChain(accountID string, ids []string) {
	e.t.Helper()
	evs := e.storedChain(accountID)
	require.Len(e.t, evs, len(ids))
	got := make([]string, len(evs))
	prev := chain.Genesis
	for i, ev := range evs {
		got[i] = ev.ID
		require.EqualValues(e.t, i+1, ev.Sequence, "sequence of %s", ev.ID)
		require.Equal(e.t, prev, ev.PrevHash, "prev_hash of %s", ev.ID)
		require.Equal(e.t, chain.NewHasher().Hash(prev, &ev.Content), ev.Hash, "hash of %s", ev.ID)
		prev = ev.Hash
	}
	require.ElementsMatch(e.t, ids, got)
	var headSeq int64
	var headHash string
	require.NoError(e.t, e.super.QueryRow(context.Background(),
		`SELECT sequence, hash FROM audit.chain_heads WHERE account_id = $1`, accountID).Scan(&headSeq, &headHash))
	require.EqualValues(e.t, len(evs), headSeq)
	require.Equal(e.t, prev, headHash)
}

// TestEventsAreStoredOnceAndChained: events published to the audit stream, some twice,
// some also through Append, are each stored once, in a chain per account; events with no
// account form a chain of their own; a message that is no event does not block the rest.
func TestEventsAreStoredOnceAndChained(t *testing.T) {
	e := newEnv(t)
	a, b := e.accounts.api.SignUp("alice"), e.accounts.api.SignUp("bob")
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	byAccount := map[string][]string{}
	var evs []*auditv1.AuditEvent
	for i := range 90 {
		acc := []string{a.AccountID, b.AccountID, ""}[i%3]
		ev := event(acc, base.Add(time.Duration(i%7)*time.Microsecond)) // many share a time
		evs = append(evs, ev)
		byAccount[acc] = append(byAccount[acc], ev.GetId())
	}
	evs[5].Details = map[string]string{"nul": "a\x00b"}
	evs[6].Time = nil // stored with the time JetStream received it

	// A garbage message first: it is rejected (terminated), not retried forever.
	_, err := e.js.Publish(context.Background(), natsx.AuditSubject(e.ns, a.AccountID), []byte("\xff not protobuf"))
	require.NoError(t, err)
	e.publish(evs...)
	e.publish(evs[:30]...) // the same Nats-Msg-Id: JetStream drops them
	// The same events under other message ids (a relay that lost its dedupe window):
	// JetStream keeps them, the audit service stores them no second time.
	for _, ev := range evs[:20] {
		data, err := proto.Marshal(ev)
		require.NoError(t, err)
		msg := &nats.Msg{Subject: natsx.AuditSubject(e.ns, ev.GetAccountId()), Data: data, Header: nats.Header{}}
		msg.Header.Set(nats.MsgIdHdr, ev.GetId()+"-again")
		_, err = e.js.PublishMsg(context.Background(), msg)
		require.NoError(t, err)
	}
	for acc, want := range byAccount {
		e.waitStored(acc, len(want))
	}
	// Append of an event already consumed is a no-op; a new one extends the chain.
	require.False(t, e.appendEvent(evs[0]))
	extra := event(a.AccountID, base)
	require.True(t, e.appendEvent(extra))
	require.False(t, e.appendEvent(extra))
	byAccount[a.AccountID] = append(byAccount[a.AccountID], extra.GetId())

	// Everything published so far has been delivered and acknowledged.
	e.waitDrained()
	for acc, want := range byAccount {
		e.requireChain(acc, want)
	}
	var nul, noTime store.Event
	for _, ev := range e.storedChain(evs[5].GetAccountId()) {
		if ev.ID == evs[5].GetId() {
			nul = ev
		}
	}
	for _, ev := range e.storedChain(evs[6].GetAccountId()) {
		if ev.ID == evs[6].GetId() {
			noTime = ev
		}
	}
	require.Equal(t, "a\uFFFDb", nul.Details["nul"], "NUL, which Postgres text cannot hold, is replaced")
	require.WithinDuration(t, time.Now(), noTime.Time, time.Minute)

	for _, u := range []testutil.Account{a, b} {
		ok, checked, bad := e.verify(u.Token)
		require.True(t, ok, bad)
		require.Equal(t, len(byAccount[u.AccountID]), checked)
	}

	resp, err := e.audit.api.HTTP.Get(e.audit.api.Base + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	metrics, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, m := range []string{
		"latchkey_audit_events_stored_total", "latchkey_audit_store_seconds_bucket",
		"latchkey_audit_consumer_pending", "latchkey_audit_events_rejected_total",
	} {
		require.Contains(t, string(metrics), m)
	}
}

// waitDrained waits until the durable consumer has nothing pending: every message
// delivered and acknowledged (or terminated).
func (e *env) waitDrained() {
	e.t.Helper()
	ctx := context.Background()
	testutil.Eventually(e.t, 30*time.Second, func() bool {
		c, err := e.js.Consumer(ctx, natsx.AuditStream(e.ns), "audit")
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "the audit consumer to drain")
}
