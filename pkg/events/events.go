// Package events builds the change events (docs/architecture.md, "Events") and names their
// kinds.
package events

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/ids"
)

// New returns an event with a fresh id and the current time.
func New(accountID, requestID string) *eventsv1.Event {
	return &eventsv1.Event{Id: ids.New(ids.Event), Time: timestamppb.New(time.Now()), AccountId: accountID, RequestId: requestID}
}

// Kind is the event's subject suffix, e.g. "key.revoked".
func Kind(e *eventsv1.Event) string {
	switch e.GetPayload().(type) {
	case *eventsv1.Event_KeyCreated:
		return "key.created"
	case *eventsv1.Event_KeyUpdated:
		return "key.updated"
	case *eventsv1.Event_KeyRotated:
		return "key.rotated"
	case *eventsv1.Event_KeyRevoked:
		return "key.revoked"
	case *eventsv1.Event_KeyClaimed:
		return "key.claimed"
	case *eventsv1.Event_KeyExposed:
		return "key.exposed"
	case *eventsv1.Event_AccountSuspended:
		return "account.suspended"
	case *eventsv1.Event_AccountReinstated:
		return "account.reinstated"
	case *eventsv1.Event_AccountPlanChanged:
		return "account.plan_changed"
	case *eventsv1.Event_ProjectUpdated:
		return "project.updated"
	case *eventsv1.Event_ProjectDeleted:
		return "project.deleted"
	default:
		return "unknown"
	}
}
