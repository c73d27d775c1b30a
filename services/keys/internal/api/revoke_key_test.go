package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestEventsReachTheStream checks the outbox: each change lands in JetStream once, with
// its event id as Nats-Msg-Id, promptly after the call returns.
func TestEventsReachTheStream(t *testing.T) {
	s := startSuite(t)
	nc, err := nats.Connect(s.natsURL)
	require.NoError(t, err)
	defer nc.Close()
	revokes := make(chan *nats.Msg, 1)
	sub, err := nc.ChanSubscribe(natsx.EventSubject(s.ns, "key.revoked"), revokes)
	require.NoError(t, err)
	defer sub.Unsubscribe()

	token, accountID := s.signUp("events")
	id, _ := s.IngestKey(token, s.Project(token))
	s.Must(200, s.Call("POST", "/v1/keys/"+id+":rotate", token, map[string]any{}))
	start := time.Now()
	s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"reason": "test"}))
	select {
	case m := <-revokes:
		t.Logf("key.revoked arrived %s after the call began", time.Since(start))
		var ev eventsv1.Event
		require.NoError(t, proto.Unmarshal(m.Data, &ev))
		require.Equal(t, id, ev.GetKeyRevoked().GetKeyId())
		require.Len(t, ev.GetKeyRevoked().GetKeyHash(), 32)
		require.Equal(t, accountID, ev.GetAccountId())
		require.Equal(t, ev.GetId(), m.Header.Get(jetstream.MsgIDHeader))
	case <-time.After(2 * time.Second):
		t.Fatal("no key.revoked event within 2s")
	}

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := context.Background()
	stream, err := js.Stream(ctx, natsx.EventsStream(s.ns))
	require.NoError(t, err)
	kinds := map[string]int{}
	testutil.Eventually(t, 5*time.Second, func() bool {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(s.ns+".events.>"))
		if err != nil {
			return false
		}
		kinds = map[string]int{}
		for subj, n := range info.State.Subjects {
			kinds[strings.TrimPrefix(subj, s.ns+".events.")] = int(n)
		}
		return kinds["key.created"] == 1 && kinds["key.rotated"] == 1 && kinds["key.revoked"] == 1
	}, "created, rotated and revoked events, once each")
	require.Equal(t, 1, kinds["project.updated"], "the project's creation: %v", kinds)
}
