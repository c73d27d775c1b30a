package api

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/receipts"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

const (
	defaultReceiptWait = 2 * time.Second
	maxReceiptWait     = 30 * time.Second
	// revokedSettled is past any gateway's staleness bound (30 s by default): a key revoked
	// this long ago is refused everywhere whatever happened to its event.
	revokedSettled = 2 * time.Minute
)

// RevokeKey stops a key at once; the row stays for history. Revoking twice is a no-op.
// With wait_for_gateways it also waits until every live gateway has dropped the key and
// says how many did: a revocation receipt. Revoking the active key of a replace_on_revoke
// type mints its replacement in the same transaction and answers it, with its secret,
// once (replacingType, replaceRevoked; events key.revoked and key.created).
func (s *Server) RevokeKey(ctx context.Context, req *keysv1.RevokeKeyRequest) (*keysv1.RevokeKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Key, req.GetId()); err != nil {
		return nil, err
	}
	if err := checkText("reason", req.GetReason(), maxReason); err != nil {
		return nil, err
	}
	wait := time.Duration(req.GetWaitTimeoutMs()) * time.Millisecond
	switch {
	case req.GetWaitTimeoutMs() < 0 || wait > maxReceiptWait:
		return nil, invalid("wait_timeout_ms must be between 0 and %d", maxReceiptWait.Milliseconds())
	case wait == 0:
		wait = defaultReceiptWait
	}
	ev := events.New(p.AccountID, requestid.From(ctx))
	var watch *receipts.Watch
	wantReceipt := req.GetWaitForGateways()
	if wantReceipt {
		// Listen before the commit: a gateway may confirm before this call gets to wait.
		// Without NATS there is nothing to listen to; the revocation goes ahead and the
		// receipt says nothing was confirmed.
		if watch, err = s.receipts.Watch(ev.GetId()); err == nil {
			defer watch.Close()
		}
	}
	replaceAs := s.replacingType(ctx, p.AccountID, req.GetId())
	now := s.now()
	revoked := false
	var replacement *keysv1.Replacement
	k, err := s.store.ChangeWith(ctx, p.AccountID, req.GetId(), func(tx pgx.Tx, k *store.Key) (*eventsv1.Event, map[string]string, error) {
		if k.RevokedAt != nil {
			return nil, nil, nil
		}
		active := k.Status(now) == store.StatusActive
		if err := store.Revoke(ctx, tx, k, now, req.GetReason()); err != nil {
			return nil, nil, err
		}
		revoked = true
		ev.Payload = &eventsv1.Event_KeyRevoked{KeyRevoked: &eventsv1.KeyRevoked{KeyId: k.ID, KeyHash: k.Hash, Reason: req.GetReason()}}
		if replaceAs == nil || !active {
			return ev, nil, nil
		}
		r, secret, err := s.replaceRevoked(ctx, tx, p, replaceAs, k, now)
		if err != nil {
			return nil, nil, err
		}
		replacement = &keysv1.Replacement{Key: toProto(r, now), Secret: secret}
		return ev, map[string]string{"replacement_key_id": r.ID}, nil
	})
	if err != nil {
		return nil, err
	}
	resp := &keysv1.RevokeKeyResponse{Key: toProto(k, now), Replacement: replacement}
	if !revoked {
		if wantReceipt {
			// Revoked by an earlier call, whose event this one cannot watch. Once that is
			// longer ago than any gateway keeps an entry, every gateway has dropped the key;
			// before, say nothing was confirmed.
			live := len(s.receipts.Live())
			settled := now.Sub(*k.RevokedAt) > revokedSettled && s.receipts.Known()
			applied := 0
			if settled {
				applied = live
			}
			resp.Receipt = &keysv1.RevocationReceipt{GatewaysLive: int32(live), GatewaysApplied: int32(applied), Complete: settled}
		}
		return resp, nil
	}
	s.notify()
	switch {
	case watch != nil:
		r := watch.Wait(ctx, wait)
		resp.Receipt = &keysv1.RevocationReceipt{
			GatewaysLive: int32(r.Live), GatewaysApplied: int32(r.Applied),
			Complete: r.Complete(), WaitedMs: int32(r.Waited.Milliseconds()), // at most the 30 s wait bound
		}
	case wantReceipt:
		resp.Receipt = &keysv1.RevocationReceipt{GatewaysLive: int32(len(s.receipts.Live()))}
	}
	return resp, nil
}
