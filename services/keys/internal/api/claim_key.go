package api

import (
	"context"
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
//     subject (package link: a retry within the ingest stream's two-minute duplicate
//     window links nothing twice). If that fails: unavailable (503, Retry-After), nothing
//     is committed and no secret shown; safe to retry.
//  4. One transaction commits the claim and a new key of the profile's ingest type for the
//     project and environment: the anonymous key gets the account, project and
//     environment, claimed_at, rotated_to_id the new key and grace_until now plus its
//     type's claim_grace (zero: none), so it keeps working until then and is expired
//     after (verdict's status rule); key.created and key.claimed go to the outbox (the
//     latter drops the anonymous key at every gateway at once), with the audit event
//     keys.claim (the new key; anonymous_key_id and messages_linked).
//
// messages_linked counts ingest requests: a message the gateway merged from several
// requests counts as many (link.Result.Requests).
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
	if err := claimable(k, anonType); err != nil {
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
	if err := claimable(anon, anonType); err != nil {
		return nil, err
	}
	linked, err := s.linker.Link(ctx, anon.ID, link.Target{AccountID: p.AccountID, ProjectID: projectID, Environment: env})
	if err != nil {
		if ctx.Err() != nil {
			return nil, apierr.FromError(ctx.Err())
		}
		logging.From(ctx).Warn("claim: linking the anonymous key's data failed", zap.String("key_id", anon.ID), zap.Error(err))
		return nil, errLinkFailed
	}
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
	claimed := events.New(p.AccountID, requestid.From(ctx))
	claimed.Payload = &eventsv1.Event_KeyClaimed{KeyClaimed: &eventsv1.KeyClaimed{
		AnonymousKeyId: anon.ID, AnonymousKeyHash: anon.Hash, NewKeyId: newKey.ID, GraceUntil: timestamppb.New(graceUntil),
	}}
	err = c.Commit(ctx, store.Claim{
		AccountID: p.AccountID, ProjectID: projectID, Environment: env, EnvironmentAddedAt: envAddedAt,
		At: now, GraceUntil: graceUntil, NewKey: newKey, Events: []*eventsv1.Event{created, claimed},
		Audit: auditlog.Facts{ResourceID: newKey.ID, Details: map[string]string{
			"anonymous_key_id": anon.ID, "messages_linked": strconv.FormatInt(linked.Requests, 10),
		}},
	})
	if err != nil {
		return nil, s.projectKeyTaken(ctx, newKey, err) // a profile whose claimed type is per_project
	}
	s.notify()
	return &keysv1.ClaimKeyResponse{
		Key: toProto(newKey, now), Secret: secret,
		Claimed: &keysv1.Claim{AnonymousKeyId: anon.ID, GraceUntil: timestamppb.New(graceUntil), MessagesLinked: int32(min(linked.Requests, math.MaxInt32))},
	}, nil
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

// claimable says why k may not be claimed: not_found unless it is of the anonymous type
// (a key of any account, found by hash, is not to be told apart from none), already_claimed
// once it has an account, conflict once revoked.
func claimable(k *store.Key, anonType *keyformat.Type) error {
	switch {
	case k.Type != anonType.Name:
		return errNoAnonymousKey
	case k.AccountID != "":
		return errAlreadyClaimed
	case k.RevokedAt != nil:
		return errAnonymousRevoked
	}
	return nil
}
