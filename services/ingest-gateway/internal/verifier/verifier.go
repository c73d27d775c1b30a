// Package verifier decides whether an ingest request's key may be used, in the order of
// docs/invalidation.md ("Verification at a gateway"): parse and checksum (garbage never
// costs a lookup), the local cache, then one VerifyKey call to the keys service per key at
// a time; then status, expiry, grace, the ingest capability, allowed origins and the key's
// rate limit.
package verifier

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/batch"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/keyformat/typepb"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/grant"
	"github.com/latchkey/latchkey/services/ingest-gateway/internal/keycache"
)

// capability is what ingesting needs.
const capability = "ingest"

// Config tunes the verifier.
type Config struct {
	// FailedAuthPerIP limits failed authentications per client IP; beyond it the IP gets
	// 429 before any work is done.
	FailedAuthPerIP ratelimit.Limit
	// CallTimeout bounds one VerifyKey call.
	CallTimeout time.Duration
}

// Verifier implements grant.Authorizer.
type Verifier struct {
	keys  keysv1.KeysServiceClient
	token string
	cfg   Config
	cache *keycache.Cache
	types atomic.Pointer[keyformat.Registry]
	// gwErrors is the profile's gateway_errors, loaded with types.
	gwErrors atomic.Pointer[keyformat.GatewayErrors]
	flight   singleflight.Group
	// misses, when set (BatchMisses), sends the lookups of concurrent misses to the keys
	// service in one VerifyKeys call.
	misses   *batch.Group[string, *keysv1.VerifyKeyResponse]
	perKey   *ratelimit.Limiter
	failures *ratelimit.Limiter
	now      func() time.Time
}

// New returns a verifier calling keys with the service token. It refuses everything with
// 503 until LoadTypes has succeeded.
func New(keys keysv1.KeysServiceClient, token string, cache *keycache.Cache, perKey, failures *ratelimit.Limiter, cfg Config) *Verifier {
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 2 * time.Second
	}
	return &Verifier{keys: keys, token: token, cfg: cfg, cache: cache, perKey: perKey, failures: failures, now: time.Now}
}

var (
	errNotReady = &apierr.Error{Code: apierr.Unavailable, Message: "the gateway is starting: key types are not loaded yet", RetryAfter: time.Second}
	errKeysDown = &apierr.Error{Code: apierr.Unavailable, Message: "keys cannot be verified right now", RetryAfter: time.Second}
	errBadKey   = apierr.New(apierr.Unauthenticated, "the key is not a valid Latchkey key")
	// A key that was good once says why it no longer is, in the envelope's "reason" (the
	// verdict code; ErrorInfo metadata over gRPC), so an SDK can tell its user to switch
	// keys rather than to check for a typo.
	errRevoked    = apierr.New(apierr.Unauthenticated, "the key has been revoked").With("reason", string(verdict.Revoked))
	errExpired    = apierr.New(apierr.Unauthenticated, "the key has expired").With("reason", string(verdict.Expired))
	errSuspended  = apierr.New(apierr.AccountSuspended, "the key's account is suspended")
	errCapability = apierr.New(apierr.InsufficientCapability, "the key may not ingest data")
	errOrigin     = apierr.New(apierr.OriginNotAllowed, "this origin may not use the key")
	errNoOrigin   = apierr.New(apierr.OriginNotAllowed, "this key works only from a browser page of an origin its project allows; the request has no Origin")
)

// Ready reports whether key types are loaded.
func (v *Verifier) Ready() bool { return v.types.Load() != nil }

// LoadTypes takes the key types from the keys service, so the gateway parses and limits
// keys exactly as keys issues them, and the profile's gateway_errors with them, so it
// words its refusals as the profile says (GatewayErrors).
func (v *Verifier) LoadTypes(ctx context.Context) error {
	resp, err := v.keys.ListKeyTypes(auth.OutgoingBearer(ctx, v.token), &keysv1.ListKeyTypesRequest{})
	if err != nil {
		return err
	}
	reg, err := typepb.FromProtoList(resp.GetKeyTypes())
	if err != nil {
		return err
	}
	v.use(reg, typepb.GatewayErrorsFromProto(resp.GetGatewayErrors()))
	return nil
}

// UseTypes sets the key types directly, with the registry's own gateway_errors (LoadTypes
// does it from the keys service).
func (v *Verifier) UseTypes(reg *keyformat.Registry) { v.use(reg, reg.GatewayErrors()) }

func (v *Verifier) use(reg *keyformat.Registry, g keyformat.GatewayErrors) {
	v.gwErrors.Store(&g)
	v.types.Store(reg)
}

// GatewayErrors is how the loaded profile words the gateway's refusals (ingest.Config's
// Errors); the zero value, Latchkey's envelope, until the types are loaded.
func (v *Verifier) GatewayErrors() keyformat.GatewayErrors {
	if g := v.gwErrors.Load(); g != nil {
		return *g
	}
	return keyformat.GatewayErrors{}
}

// Types returns the loaded registry, or nil.
func (v *Verifier) Types() *keyformat.Registry { return v.types.Load() }

// Authorize implements grant.Authorizer.
func (v *Verifier) Authorize(ctx context.Context, req grant.Request) (grant.Grant, error) {
	now := v.now()
	code, e, err := v.verify(ctx, req, now)
	observe(code)
	if err != nil {
		if e != nil {
			// A working key refused for this request (its origin, its account) keeps its
			// notice: the client must hear of the claim whatever it is told.
			return grant.Grant{Notice: e.Notice}, err
		}
		return grant.Grant{}, err
	}
	t, _ := v.types.Load().Lookup(e.Type)
	if t != nil {
		if ok, retry := v.perKey.Allow(e.KeyID, ratelimit.Limit{PerSecond: t.RateLimit.PerSecond, Burst: t.RateLimit.Burst}); !ok {
			return grant.Grant{Notice: e.Notice}, (&apierr.Error{Code: apierr.RateLimited, Message: "this key's rate limit is exceeded", RetryAfter: retry}).With("tier", "key")
		}
	}
	return grant.Grant{
		KeyID: e.KeyID, AccountID: e.AccountID, ProjectID: e.ProjectID, Environment: e.Environment,
		KeyType: e.Type, Anonymous: e.Anonymous, Notice: e.Notice, ServerID: e.ServerID,
	}, nil
}

// verify returns the verdict code, and the entry when the key may be used, or is refused
// though it still works (account suspended, capability, origin); a revoked or expired key
// has none.
func (v *Verifier) verify(ctx context.Context, req grant.Request, now time.Time) (verdict.Code, *keycache.Entry, error) {
	reg := v.types.Load()
	if reg == nil {
		return "unavailable", nil, errNotReady
	}
	if req.Key == "" {
		return verdict.Malformed, nil, v.fail(req, auth.ErrNoAPIKey)
	}
	if _, err := reg.Parse(req.Key); err != nil {
		return verdict.Malformed, nil, v.fail(req, errBadKey)
	}
	h := keycache.Sum(req.Key)
	e, hit := v.cache.Get(&h, now.UnixNano())
	if hit {
		cacheHits.Inc()
	} else {
		// An address that keeps failing gets no more lookups on the keys service. Cache
		// hits skip this: a working key is not blocked by a noisy neighbour's NAT.
		if ok, retry := v.failures.Peek(req.ClientIP, v.cfg.FailedAuthPerIP); !ok {
			return "ip_limited", nil, (&apierr.Error{Code: apierr.RateLimited, Message: "too many failed authentications from this address", RetryAfter: retry}).With("tier", "ip")
		}
		cacheMisses.Inc()
		var err error
		if e, err = v.fetch(ctx, req.Key, h); err != nil {
			return "unavailable", nil, err
		}
	}
	if !e.Found {
		return verdict.NotFound, nil, v.fail(req, errBadKey)
	}
	code := verdict.Decide(&e.Facts, now, req.Origin, capability)
	switch code {
	case verdict.OK:
		return code, e, nil
	case verdict.Revoked:
		return code, nil, v.fail(req, errRevoked)
	case verdict.Expired:
		return code, nil, v.fail(req, errExpired)
	case verdict.AccountSuspended:
		return code, e, errSuspended
	case verdict.InsufficientCapability:
		return code, e, errCapability
	default:
		if req.Origin == "" { // only a browser-only key is refused for no origin
			return code, e, errNoOrigin
		}
		return code, e, errOrigin
	}
}

// fail counts a failed authentication against the client's address.
func (v *Verifier) fail(req grant.Request, err error) error {
	v.failures.Allow(req.ClientIP, v.cfg.FailedAuthPerIP)
	return err
}

// fetch asks the keys service, once per key however many requests wait for it, and caches
// the answer unless an invalidation raced with the call. While the cache is distrusted
// (the gateway cannot confirm it follows the event stream) each request asks for itself:
// a call under way may have begun before a revocation the gateway cannot hear of.
func (v *Verifier) fetch(ctx context.Context, key string, h keycache.Hash) (*keycache.Entry, error) {
	epoch := v.cache.Epoch()
	call := func() (any, error) {
		// Detached from one caller's cancellation: others share this answer.
		cctx, cancel := context.WithTimeout(auth.OutgoingBearer(context.WithoutCancel(ctx), v.token), v.cfg.CallTimeout)
		defer cancel()
		start := time.Now()
		resp, err := v.lookup(cctx, key)
		verifySeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return nil, err
		}
		e := v.entry(resp)
		v.cache.Put(h, e, epoch, v.now().UnixNano())
		return e, nil
	}
	var (
		res any
		err error
	)
	if v.cache.Trusted() {
		// The epoch is part of the flight's name: a request arriving after an invalidation
		// (a revocation applied, its receipt sent) must not share an answer fetched before it.
		res, err, _ = v.flight.Do(string(h[:])+epoch.Key(), call)
	} else {
		res, err = call()
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil, apierr.New(apierr.Canceled, "the request was canceled")
		}
		return nil, errKeysDown
	}
	return res.(*keycache.Entry), nil
}

// Batches of misses sent to keys: at most missSlots VerifyKeys calls under way, each of at
// most maxMisses keys (keys takes 1000).
const (
	missSlots = 4
	maxMisses = 500
)

// BatchMisses makes the verifier send the lookups of misses that arrive together to the
// keys service in one VerifyKeys call (keys' InternalService on the same connection)
// rather than one VerifyKey call each: a cold start of a gateway is then a few calls, not
// one per hot key (docs/scale.md, "Cold start"). Every call begins after each lookup it
// carries was asked (package batch), as a VerifyKey call of its own would. Call it before
// the verifier serves.
func (v *Verifier) BatchMisses(keys keysv1.InternalServiceClient) {
	v.misses = batch.New(func(ctx context.Context, plain []string) (map[string]*keysv1.VerifyKeyResponse, error) {
		req := &keysv1.VerifyKeysRequest{Requests: make([]*keysv1.VerifyKeyRequest, len(plain))}
		for i, k := range plain {
			req.Requests[i] = &keysv1.VerifyKeyRequest{Key: k}
		}
		resp, err := keys.VerifyKeys(auth.OutgoingBearer(ctx, v.token), req)
		if err != nil {
			return nil, err
		}
		if len(resp.GetResponses()) != len(plain) {
			return nil, errors.New("verifier: VerifyKeys answered a different number of keys")
		}
		out := make(map[string]*keysv1.VerifyKeyResponse, len(plain))
		for i, k := range plain {
			out[k] = resp.GetResponses()[i]
		}
		return out, nil
	}, missSlots, maxMisses, v.cfg.CallTimeout)
}

// lookup asks the keys service about key: in a batch when BatchMisses was called, else in
// a VerifyKey call of its own, as also when the keys service is older than VerifyKeys
// (Unimplemented: a gateway upgraded before the keys service in a rolling deploy).
func (v *Verifier) lookup(ctx context.Context, key string) (*keysv1.VerifyKeyResponse, error) {
	if v.misses != nil {
		resp, _, err := v.misses.Get(ctx, key)
		if status.Code(err) != codes.Unimplemented {
			return resp, err
		}
	}
	return v.keys.VerifyKey(ctx, &keysv1.VerifyKeyRequest{Key: key})
}

func (v *Verifier) entry(resp *keysv1.VerifyKeyResponse) *keycache.Entry {
	k := resp.GetKey()
	if k == nil {
		return &keycache.Entry{}
	}
	e := &keycache.Entry{
		Found: true, KeyID: k.GetId(), AccountID: k.GetAccountId(), ProjectID: k.GetProjectId(),
		Environment: k.GetEnvironment(), Type: k.GetType(), ServerID: k.GetServerId(),
		Facts: verdict.Facts{
			Capabilities:     k.GetCapabilities(),
			AllowedOrigins:   resp.GetAllowedOrigins(),
			AccountSuspended: resp.GetCode() == string(verdict.AccountSuspended),
		},
	}
	if k.GetRevokedAt() != nil {
		e.Facts.RevokedAt = k.GetRevokedAt().AsTime()
	}
	if k.GetExpiresAt() != nil {
		e.Facts.ExpiresAt = k.GetExpiresAt().AsTime()
	}
	if k.GetGraceUntil() != nil {
		e.Facts.GraceUntil = k.GetGraceUntil().AsTime()
	}
	if t, ok := v.types.Load().Lookup(k.GetType()); ok {
		e.Facts.Browser, e.Facts.BrowserOnly = t.Browser, t.BrowserOnly()
		// A claim gives an anonymous key the account it was claimed into (and a grace):
		// from then on its data goes there, with a reminder to switch to the new key.
		claimed := k.GetAccountId() != ""
		e.Anonymous = t.Anonymous && !claimed
		if t.Anonymous && claimed && k.GetGraceUntil() != nil {
			e.Notice = grant.ClaimNotice(k.GetGraceUntil().AsTime())
		}
	}
	return e
}
