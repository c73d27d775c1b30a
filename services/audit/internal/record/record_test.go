package record

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

func TestFromProto(t *testing.T) {
	received := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	at := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.FixedZone("x", 7200))
	ev := &auditv1.AuditEvent{
		Id: "aud_1", Time: timestamppb.New(at), AccountId: "acc_1",
		Actor: &auditv1.Actor{Type: "user", Id: "usr_1"}, KeyId: "key_1", Action: "keys.create",
		ResourceType: "key", ResourceId: "key_2", Result: "ok", RequestId: "req_1",
		ClientIp: "192.0.2.1", UserAgent: "ua", Details: map[string]string{"a": "1"},
		Sequence: 7, Hash: "h", PrevHash: "p",
	}
	c, err := FromProto(ev, "fallback", received)
	require.NoError(t, err)
	require.Equal(t, chain.Content{
		ID: "aud_1", Time: at.UTC().Truncate(time.Microsecond), AccountID: "acc_1", ActorType: "user",
		ActorID: "usr_1", KeyID: "key_1", Action: "keys.create", ResourceType: "key", ResourceID: "key_2",
		Result: "ok", RequestID: "req_1", ClientIP: "192.0.2.1", UserAgent: "ua", Details: map[string]string{"a": "1"},
	}, c)

	back := ToProto(&store.Event{Content: c, Sequence: 3, Hash: "hh", PrevHash: "pp"})
	require.Equal(t, "aud_1", back.GetId())
	require.Equal(t, int32(3), back.GetSequence())
	require.True(t, back.GetTime().AsTime().Equal(c.Time))

	// The id falls back to the message id; no id at all is refused, as is a huge one.
	c, err = FromProto(&auditv1.AuditEvent{}, "msg-id", received)
	require.NoError(t, err)
	require.Equal(t, "msg-id", c.ID)
	require.Equal(t, received, c.Time, "no time: when it was received")
	_, err = FromProto(&auditv1.AuditEvent{}, "", received)
	require.ErrorIs(t, err, ErrNoID)
	_, err = FromProto(&auditv1.AuditEvent{Id: strings.Repeat("i", MaxIDLen+1)}, "", received)
	require.ErrorIs(t, err, ErrIDTooBig)

	c, err = FromProto(&auditv1.AuditEvent{Id: "x", Time: &timestamppb.Timestamp{Nanos: -1}}, "", received)
	require.NoError(t, err)
	require.Equal(t, received, c.Time, "an invalid time: when it was received")
}

func TestCleaning(t *testing.T) {
	ev := &auditv1.AuditEvent{
		Id:         "x",
		ResourceId: strings.Repeat("€", 400), // 3 bytes each: cut at 512 bytes, on a boundary
		Action:     "a\x00b",
		UserAgent:  "bad \xff utf8",
		Details:    map[string]string{},
	}
	for i := range 100 {
		ev.Details[string(rune('a'+i%26))+strings.Repeat("k", i)] = "v"
	}
	c, err := FromProto(ev, "", time.Now())
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("€", 170), c.ResourceID)
	require.Equal(t, "a\uFFFDb", c.Action)
	require.True(t, utf8.ValidString(c.UserAgent))
	require.Len(t, c.Details, maxDetails)
}
