// Package record turns audit events as they arrive (auditv1.AuditEvent, from JetStream or
// Append) into what is stored and hashed, and back. The consumer and Append share it, so an
// event is stored the same way whichever road it took.
package record

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/latchkey/latchkey/gen/latchkey/audit/v1"
	"github.com/latchkey/latchkey/services/audit/internal/chain"
	"github.com/latchkey/latchkey/services/audit/internal/store"
)

// MaxIDLen bounds an event id. Longer ids are refused rather than cut, since cutting could
// make two events one.
const MaxIDLen = 128

// Bounds on the other fields, in bytes. Longer values are cut (at a character boundary) so
// that no event is lost for being too big and every indexed value fits a btree entry.
const (
	maxShort   = 128  // actor type, action, resource type, result
	maxID      = 512  // account, actor, key, resource and request ids, client IP
	maxAgent   = 1024 // user agent
	maxDetails = 64   // details entries; more are dropped, in key order
	maxDetail  = 4096 // one detail key or value
)

// Errors of events that cannot be stored at all.
var (
	ErrNoID     = errors.New("the event has no id")
	ErrIDTooBig = errors.New("the event id is over 128 bytes")
)

// FromProto returns the content to store for ev. fallbackID is used when ev has no id (the
// JetStream Nats-Msg-Id); received is its time when ev has none or an invalid one. Text is
// made storable: invalid UTF-8 and NUL (which Postgres text cannot hold) become U+FFFD,
// and over-long fields are cut.
func FromProto(ev *auditv1.AuditEvent, fallbackID string, received time.Time) (chain.Content, error) {
	id := ev.GetId()
	if id == "" {
		id = fallbackID
	}
	switch {
	case id == "":
		return chain.Content{}, ErrNoID
	case len(id) > MaxIDLen:
		return chain.Content{}, ErrIDTooBig
	}
	t := received
	if ts := ev.GetTime(); ts != nil && ts.CheckValid() == nil {
		t = ts.AsTime()
	}
	c := chain.Content{
		ID:           clean(id, MaxIDLen),
		Time:         t.UTC().Truncate(time.Microsecond),
		AccountID:    clean(ev.GetAccountId(), maxID),
		ActorType:    clean(ev.GetActor().GetType(), maxShort),
		ActorID:      clean(ev.GetActor().GetId(), maxID),
		KeyID:        clean(ev.GetKeyId(), maxID),
		Action:       clean(ev.GetAction(), maxShort),
		ResourceType: clean(ev.GetResourceType(), maxShort),
		ResourceID:   clean(ev.GetResourceId(), maxID),
		Result:       clean(ev.GetResult(), maxShort),
		RequestID:    clean(ev.GetRequestId(), maxID),
		ClientIP:     clean(ev.GetClientIp(), maxID),
		UserAgent:    clean(ev.GetUserAgent(), maxAgent),
	}
	if d := ev.GetDetails(); len(d) > 0 {
		c.Details = make(map[string]string, min(len(d), maxDetails))
		for _, k := range slices.Sorted(maps.Keys(d)) {
			if len(c.Details) == maxDetails {
				break
			}
			// Two keys may clean to the same one; the first in key order wins.
			ck := clean(k, maxDetail)
			if _, taken := c.Details[ck]; !taken {
				c.Details[ck] = clean(d[k], maxDetail)
			}
		}
	}
	return c, nil
}

// clean makes s valid UTF-8 without NUL, at most n bytes.
func clean(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// ToProto is the API's view of a stored event.
func ToProto(e *store.Event) *auditv1.AuditEvent {
	return &auditv1.AuditEvent{
		Id:           e.ID,
		Time:         timestamppb.New(e.Time),
		AccountId:    e.AccountID,
		Actor:        &auditv1.Actor{Type: e.ActorType, Id: e.ActorID},
		KeyId:        e.KeyID,
		Action:       e.Action,
		ResourceType: e.ResourceType,
		ResourceId:   e.ResourceID,
		Result:       e.Result,
		RequestId:    e.RequestID,
		ClientIp:     e.ClientIP,
		UserAgent:    e.UserAgent,
		Details:      e.Details,
		Sequence:     int32(min(e.Sequence, math.MaxInt32)), // 32-bit in the API (JSON numbers); a chain 2^31 events long is far off
		Hash:         e.Hash,
		PrevHash:     e.PrevHash,
	}
}
