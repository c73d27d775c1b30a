package api

import (
	"context"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// serverDeleted is the revoke_reason of the keys DeleteServer revokes.
const serverDeleted = "server deleted"

// DeleteServer deletes one of the caller's servers and revokes at once every key bound to
// it that is not revoked yet (its collector key, a predecessor in rotation grace, keys
// imported for it), each with a key.revoked event, in one transaction that takes the
// hourly deletes cap. It answers the server, deleted_at set; from then on the server is
// not_found (a second delete too).
func (v serversServer) DeleteServer(ctx context.Context, req *keysv1.DeleteServerRequest) (*keysv1.DeleteServerResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, capServers)
	if err != nil {
		return nil, err
	}
	if _, err := s.serversType(); err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Server, req.GetId()); err != nil {
		return nil, err
	}
	revoked := func(k *store.Key) *eventsv1.Event {
		ev := events.New(p.AccountID, requestid.From(ctx))
		ev.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: k.ID, KeyHash: k.Hash, Reason: serverDeleted}}
		return ev
	}
	srv, _, err := s.store.DeleteServer(ctx, p.AccountID, req.GetId(), s.now(), serverDeleted, revoked, s.serverCaps.Deletes)
	if err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.DeleteServerResponse{Server: serverProto(srv, "", s.now())}, nil
}
