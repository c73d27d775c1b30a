package api

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auditlog"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/services/keys/internal/link"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// claimedType is the type of the key a claim mints: the profile's ingest type, which every
// profile has (keyformat.Type.Name).
const claimedType = "ingest"

// linkRetryAfter is what a claim whose linking failed tells the client to wait.
const linkRetryAfter = time.Second

// The errors of ClaimKey.
var (
	errClaimNeedsSession = apierr.New(apierr.PermissionDenied, "only a signed-in user (a session) can claim an anonymous key; an account key cannot")
	errNoAnonymousKey    = apierr.New(apierr.NotFound, "anonymous key not found")
	errAlreadyClaimed    = apierr.New(apierr.AlreadyClaimed, "this anonymous key has already been claimed; its data and its new key belong to the account that claimed it")
	errAnonymousRevoked  = apierr.New(apierr.Conflict, "this anonymous key was revoked: it cannot be claimed")
	errNoClaimedType     = apierr.New(apierr.NotFound, "this deployment's key profile (LATCHKEY_KEY_PROFILE) has no %q type for a claimed key", claimedType)
	errLinkFailed        = &apierr.Error{
		Code:       apierr.Unavailable,
		Message:    "the anonymous key's data could not be moved to your account just now; nothing was claimed and no key was made: retry",
		RetryAfter: linkRetryAfter,
	}
)

// ClaimKey moves an anonymous key into the caller's account (DESIGN "Seed schemes", Claim):
// with a session only (permission_denied, 403, for an account key) holding keys:write, for a
// project of the account and one of its environments (checked as CreateKey checks them). In
// order:
//
//  1. The anonymous key is found by its hash (possession is the proof): not a key of the
//     profile's anonymous type, or none at all, is not_found (404, revealing nothing);
//     one claimed before, by anyone, already_claimed (409); a revoked one conflict (409).
//  2. Its row is locked for the rest of the call, so a concurrent claim of it waits, then
//     finds it claimed: exactly one claim wins.
//  3. Every message of it still in the anonymous stream is linked to the account's ingest
//     subject (package link), under Nats-Msg-Ids named by this attempt (the key.claimed
//     event's id). If that fails, for any reason (NATS, a stream refusing, the link's 30 s,
//     the client going away): the link deletes the copies it stored before it returns,
//     and the answer is unavailable (503, Retry-After; or the cancellation), nothing is
//     committed and no secret shown. A claim that fails after linking (minting the key,
//     the commit) deletes them too (link.Unlink), before the row lock is released where it
//     can. So a failed or cancelled claim leaves no data on any account's subject, and a
//     retry, to the same target or another, at any time, links every message once. Copies
//     remain only when their deletion fails (link.ErrCopiesRemain, logged at error with
//     the key id), or when a commit that failed cannot be told from one that landed (the
//     copies are kept then: they may be the account's data).
//  4. One transaction commits the claim and a new key of the profile's ingest type for the
//     project and environment: the anonymous key gets the account, project and
//     environment, claimed_at, rotated_to_id the new key and grace_until now plus its
//     type's claim_grace (zero: none), so it keeps working until then and is expired
//     after (verdict's status rule); key.created and key.claimed go to the outbox (the
//     latter drops the anonymous key at every gateway at once), with the audit event
//     keys.claim (the new key; anonymous_key_id and messages_linked).
//  5. The answer waits until every live gateway has confirmed key.claimed (receipts;
//     listened for before the commit), at most claimSweepWait (2 s) so a gateway that does
//     not confirm holds nothing back: once the client has the new secret, its next request
//     with the anonymous key is filed in the account and carries the claim notice.
//  6. After the answer, in the background, the sweep (sweepClaim): a gateway files the
//     key's data on the anonymous subject until it applies key.claimed, so a request it
//     stored there after step 3 began would be stranded. The sweep links the key to the
//     same target again, from where step 3 stopped (link.Result.Through: the anonymous
//     stream's last sequence when it began), so it stores only those stragglers, each
//     once, and nothing step 3 linked. Its failure is logged with the key id (what it
//     stored is deleted again; the stragglers stay on the anonymous subject); the claim
//     stands.
//
// A commit that returns an error is checked under the key's row lock: if it landed all
// the same, the claim answers as committed.
//
// messages_linked counts ingest requests: a message the gateway merged from several
// requests counts as many (link.Result.Requests). It is what step 3 linked, in the answer
// and in the audit event alike; the sweep's stragglers are not in it (they are logged,
// with the count, as stragglers_linked). The sweep runs after the answer because its
// failure could not undo the committed claim nor hide the secret, so waiting for it would
// buy only a count. It is detached from the request's cancellation with a timeout of its
// own (claimSweepTimeout), and the service's shutdown waits for it (Server.Sweeps).
func (s *Server) ClaimKey(ctx context.Context, req *keysv1.ClaimKeyRequest) (*keysv1.ClaimKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	if p.Kind != auth.KindUser {
		return nil, errClaimNeedsSession
	}
	t, ok := s.types.Lookup(claimedType)
	if !ok {
		return nil, errNoClaimedType
	}
	anonType, hash, err := s.anonymousHash(req.GetAnonymousKey())
	if err != nil {
		return nil, err
	}
	if err := s.mayManageType(p, t, s.now()); err != nil {
		return nil, err
	}
	// Checked before the project, so that a key that cannot be claimed costs no call to
	// accounts; checked again under the lock.
	k, err := s.store.ByHash(ctx, hash)
	if err != nil {
		return nil, anonymousNotFound(err)
	}
	if err := claimable(k, anonType, p.AccountID); err != nil {
		return nil, err
	}
	// No call to accounts is made while the row lock is held.
	projectID, env, envAddedAt, err := s.binding(ctx, p, t, req.GetProjectId(), req.GetEnvironment())
	if err != nil {
		return nil, err
	}
	c, err := s.store.BeginClaim(ctx, hash)
	if err != nil {
		return nil, anonymousNotFound(err)
	}
	defer c.Rollback(ctx)
	anon := c.Key
	if err := claimable(anon, anonType, p.AccountID); err != nil {
		return nil, err
	}
	target := link.Target{AccountID: p.AccountID, ProjectID: projectID, Environment: env}
	// The key.claimed event's id names this attempt in the copies' Nats-Msg-Id: a retry is
	// another attempt, and stores again what this one stored and deleted.
	claimed := events.New(p.AccountID, requestid.From(ctx))
	linked, err := s.linker.Link(ctx, anon.ID, target, link.Attempt{ID: claimed.GetId()})
	if err != nil {
		return nil, linkFailed(ctx, anon.ID, err)
	}
	// Until the claim is committed, any failure (the client gone, Postgres) deletes the
	// copies again, before the row lock is released (deferred calls run last first).
	committed := false
	defer func() {
		if !committed {
			s.unlinkClaim(ctx, anon.ID, linked)
		}
	}()
	now := s.now()
	graceUntil := now.Add(anonType.ClaimGrace.Duration)
	newKey, secret, err := s.newKey(t, &store.Key{
		AccountID: p.AccountID, Type: t.Name, Name: "claimed from " + anon.DisplayPrefix, ProjectID: projectID,
		Environment: env, EnvironmentAddedAt: envAddedAt, Capabilities: slices.Clone(t.Capabilities),
		CreatedBy: p.Actor(), CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	created := events.New(p.AccountID, requestid.From(ctx))
	created.Payload = &eventsv1.Event_KeyCreated{KeyCreated: &eventsv1.KeyCreated{
		KeyId: newKey.ID, KeyHash: newKey.Hash, Type: newKey.Type, ProjectId: newKey.ProjectID, Environment: newKey.Environment,
	}}
	claimed.Time = timestamppb.New(time.Now()) // made before the link: when it happens is now
	claimed.Payload = &eventsv1.Event_KeyClaimed{KeyClaimed: &eventsv1.KeyClaimed{
		AnonymousKeyId: anon.ID, AnonymousKeyHash: anon.Hash, NewKeyId: newKey.ID, GraceUntil: timestamppb.New(graceUntil),
	}}
	// Listen for the gateways' confirmations of key.claimed before the commit can publish
	// it, for the sweep below. Without NATS there is nothing to listen to (nil): the sweep
	// then waits its bound.
	watch, _ := s.receipts.Watch(claimed.GetId())
	// A caller gone by now would never see the secret: commit nothing (the copies are
	// unlinked), so that its retry claims afresh rather than find the key claimed.
	if err := ctx.Err(); err != nil {
		if watch != nil {
			watch.Close()
		}
		return nil, apierr.FromError(err)
	}
	err = c.Commit(ctx, store.Claim{
		AccountID: p.AccountID, ProjectID: projectID, Environment: env, EnvironmentAddedAt: envAddedAt,
		At: now, GraceUntil: graceUntil, NewKey: newKey, Events: []*eventsv1.Event{created, claimed},
		Audit: auditlog.Facts{ResourceID: newKey.ID, Details: map[string]string{
			"anonymous_key_id": anon.ID, "messages_linked": strconv.FormatInt(linked.Requests, 10),
		}},
	})
	if err != nil {
		// A commit cut short (a cancelled context closes the connection) may have landed
		// all the same: the copies are then the account's data and stay.
		landed, known := s.claimLanded(ctx, c, hash, newKey.ID)
		if !landed {
			if !known {
				committed = true // keep the copies: they may be the account's
				logging.From(ctx).Error("claim: the commit failed and whether it landed is unknown; the linked copies are kept on the account's subject",
					zap.String("key_id", anon.ID), zap.Int64("messages_linked", linked.Requests), zap.Error(err))
			}
			if watch != nil {
				watch.Close()
			}
			return nil, s.projectKeyTaken(ctx, newKey, err) // a profile whose claimed type is per_project
		}
		logging.From(ctx).Info("claim: the commit reported an error, but the claim is stored", zap.String("key_id", anon.ID), zap.Error(err))
	}
	committed = true
	s.notify()
	// The answer waits (at most claimSweepWait) until every live gateway has dropped the
	// anonymous key, so the client's next request with it is the account's and carries the
	// notice; the sweep then picks up what gateways stored before they did.
	waited := watch != nil
	if waited {
		// Detached: a caller gone after the commit must not cut the wait the sweep counts on.
		watch.Wait(context.WithoutCancel(ctx), claimSweepWait)
	}
	sweep := link.Attempt{ID: claimed.GetId(), After: linked.Through}
	s.sweeps.start(func(stopping context.Context) { s.sweepClaim(ctx, stopping, waited, anon.ID, target, sweep) })
	return &keysv1.ClaimKeyResponse{
		Key: toProto(newKey, now), Secret: secret,
		Claimed: &keysv1.Claim{AnonymousKeyId: anon.ID, GraceUntil: timestamppb.New(graceUntil), MessagesLinked: int32(min(linked.Requests, math.MaxInt32))},
	}, nil
}

// linkFailed is the claim's answer to a Link that failed (and deleted what it stored):
// unavailable, or the request's own end when it was cancelled. It is logged with the key
// id, at error level when copies could not be deleted (link.ErrCopiesRemain).
func linkFailed(ctx context.Context, keyID string, err error) error {
	log := logging.From(ctx).With(zap.String("key_id", keyID), zap.Error(err))
	if errors.Is(err, link.ErrCopiesRemain) {
		log.Error("claim: linking the anonymous key's data failed, and some copies could not be deleted again")
	} else {
		log.Warn("claim: linking the anonymous key's data failed; nothing of it stays linked")
	}
	if ctx.Err() != nil {
		return apierr.FromError(ctx.Err())
	}
	return errLinkFailed
}

// unlinkClaim deletes the copies a claim linked before it failed to commit (link.Unlink,
// detached from the request), logging at error level what it could not delete.
func (s *Server) unlinkClaim(ctx context.Context, keyID string, linked link.Result) {
	if err := s.linker.Unlink(ctx, linked); err != nil {
		logging.From(ctx).Error("claim: the claim failed after linking, and some copies could not be deleted again",
			zap.String("key_id", keyID), zap.Error(err))
	}
}

// claimLanded tells, after Commit returned an error, whether the claim is stored all the
// same (a COMMIT cut short may have been carried out): it ends the claim's transaction and
// then locks the key's row itself, which waits for the transaction to end on the server,
// and looks whether newKeyID succeeded it. known is false when that could not be read
// (within link.UndoTimeout, detached from the request).
func (s *Server) claimLanded(ctx context.Context, c *store.Claiming, hash []byte, newKeyID string) (landed, known bool) {
	c.Rollback(ctx)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), link.UndoTimeout)
	defer cancel()
	check, err := s.store.BeginClaim(lctx, hash)
	if err != nil {
		return false, false
	}
	defer check.Rollback(lctx)
	return check.Key.RotatedToID == newKeyID, true
}

// anonymousHash checks that key is a key of the profile's anonymous type and returns that
// type and the key's keyed hash. Errors: invalid_argument for no key or one that is not a
// key of this deployment (malformed); not_found for a well-formed key of another type, as
// for one that does not exist.
func (s *Server) anonymousHash(key string) (*keyformat.Type, []byte, error) {
	if key == "" {
		return nil, nil, invalid("anonymous_key is required: the key the SDK minted (POST /v1/anonymous-keys)")
	}
	parsed, err := s.types.Parse(key)
	if err != nil {
		return nil, nil, invalid("anonymous_key is not a key of this deployment (malformed)")
	}
	anonType, ok := s.types.Anonymous()
	if !ok || parsed.Type.Name != anonType.Name {
		return nil, nil, errNoAnonymousKey
	}
	hash := s.hasher.Hash(key)
	return anonType, hash[:], nil
}

// anonymousNotFound turns the store's not_found into the claim's, which says nothing of
// whose keys were searched.
func anonymousNotFound(err error) error {
	if store.IsNotFound(err) {
		return errNoAnonymousKey
	}
	return err
}

// claimable says why k may not be claimed by account: not_found unless it is of the
// anonymous type (a key of any account, found by hash, is not to be told apart from none),
// already_claimed once it has an account (naming the new key when the caller's account
// claimed it), conflict once revoked.
func claimable(k *store.Key, anonType *keyformat.Type, account string) error {
	switch {
	case k.Type != anonType.Name:
		return errNoAnonymousKey
	case k.AccountID != "" && k.AccountID == account:
		// The caller's own claim, whose answer may have been lost: say where its key is.
		return apierr.New(apierr.AlreadyClaimed, "your account claimed this anonymous key already, into project %s; its new key is %s: "+
			"if its secret was lost, rotate that key (POST /v1/keys/%s:rotate)", k.ProjectID, k.RotatedToID, k.RotatedToID)
	case k.AccountID != "":
		return errAlreadyClaimed
	case k.RevokedAt != nil:
		return errAnonymousRevoked
	}
	return nil
}
