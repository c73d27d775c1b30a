package api

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/callmeta"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// sessionMinters says who may call CreateSessionKey, in its errors.
const sessionMinters = "a session or an ingest key of the project"

// errNoSessionType answers POST /v1/session-keys under a profile with no session type.
var errNoSessionType = apierr.New(apierr.NotFound, "this deployment's key profile (LATCHKEY_KEY_PROFILE) has no browser session key type: send from a server with an ingest key instead")

// CreateSessionKey mints a browser session key: a key of the profile's session type
// (keyformat.Registry.Session; lk_sess_, gt_session_ under typed) for project_id and
// environment of the caller's account, carrying the type's one capability (ingest) and
// expiring the type's session_window after now. It answers {key, secret, expires_at}, the
// secret once.
//
// Callers: a session of the account, or an ingest key of that project (auth.KindProjectKey:
// a live key holding "ingest", bound to project_id and, if it is bound to one, to
// environment), so that whatever holds the project's ingest key can hand pages short-lived
// keys instead. Account keys and the operator token are refused (permission_denied): they
// manage an account and have no business in a web page. A session key itself never gets
// here (it authenticates nothing but ingest: auth.ErrBrowserKey), nor does an anonymous key
// (it belongs to no account); a key of a browser-only or anonymous type is refused here
// too, so that a session key can never mint the next.
//
// Only from a browser: the request's Origin (callmeta.Origin) must be allowed for a key of
// the session type by verdict's rule (Facts.OriginAllowed), which is how the key will be
// judged at the gateway: one of the project's allowed_origins, never without an Origin nor
// under an empty list (403 origin_not_allowed). The REST edge answers the route's CORS
// preflights (server.Gateway.BrowserPaths).
//
// Limits: none of its own; the management API's per-IP, per-key (the ingest key) and
// per-account buckets (LATCHKEY_LIMIT_IP, _KEY, _ACCOUNT) apply, and each session key is
// held to its type's rate limit at the gateway. No hourly cap: pages mint often.
//
// Errors: unauthenticated (401) without a usable credential; permission_denied (403) for an
// account key, the operator, or an ingest key of another project or environment;
// insufficient_capability (403) for a project key that may not ingest;
// origin_not_allowed (403); invalid_argument (400) for a missing or malformed project_id
// or environment, or an environment the project does not list; not_found (404) for a
// project that is not the account's, or a profile without a session type;
// account_suspended (403).
func (s *Server) CreateSessionKey(ctx context.Context, req *keysv1.CreateSessionKeyRequest) (*keysv1.CreateSessionKeyResponse, error) {
	p, err := auth.RequireKind(ctx, sessionMinters, auth.KindUser, auth.KindProjectKey)
	if err != nil {
		return nil, err
	}
	t, ok := s.types.Session()
	if !ok {
		return nil, errNoSessionType
	}
	if err := s.mayMintSessions(p); err != nil {
		return nil, err
	}
	proj, envAddedAt, err := s.projectBinding(ctx, p.AccountID, t, req.GetProjectId(), req.GetEnvironment())
	if err != nil {
		return nil, err
	}
	if err := projectKeyBinding(p, req.GetProjectId(), req.GetEnvironment()); err != nil {
		return nil, err
	}
	if err := pageOrigin(ctx, t, req.GetProjectId(), proj.GetAllowedOrigins()); err != nil {
		return nil, err
	}
	now := s.now()
	exp := now.Add(t.SessionWindow.Duration)
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: p.AccountID, Type: t.Name, ProjectID: req.GetProjectId(), Environment: req.GetEnvironment(),
		EnvironmentAddedAt: envAddedAt, Capabilities: slices.Clone(t.Capabilities), CreatedBy: p.Actor(),
		ExpiresAt: &exp, CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	if err := s.insertKey(ctx, k); err != nil {
		return nil, err
	}
	return &keysv1.CreateSessionKeyResponse{Key: toProto(k, now), Secret: secret, ExpiresAt: timestamppb.New(exp)}, nil
}

// mayMintSessions refuses project keys that must not mint session keys: those of a
// browser-only type (a session key must never mint the next; such keys do not authenticate
// here anyway) or of an anonymous type, and those that may not ingest.
func (s *Server) mayMintSessions(p *auth.Principal) error {
	if p.Kind != auth.KindProjectKey {
		return nil
	}
	if t, ok := s.types.Lookup(p.KeyType); !ok || t.BrowserOnly() || t.Anonymous {
		return apierr.New(apierr.PermissionDenied, "session keys are minted with %s; keys of type %q cannot mint them", sessionMinters, p.KeyType)
	}
	if !p.Can(keyformat.SessionCapability) {
		return apierr.New(apierr.InsufficientCapability, "this key lacks the %q capability, which minting a session key needs", keyformat.SessionCapability)
	}
	return nil
}

// projectKeyBinding refuses a project key bound elsewhere than projectID and env.
func projectKeyBinding(p *auth.Principal, projectID, env string) error {
	if p.Kind != auth.KindProjectKey {
		return nil
	}
	if p.ProjectID != projectID {
		return apierr.New(apierr.PermissionDenied, "this key belongs to another project: it mints session keys for its own project only")
	}
	if p.Environment != "" && p.Environment != env {
		return apierr.New(apierr.PermissionDenied, "this key is bound to environment %q: it mints session keys for that environment only", p.Environment)
	}
	return nil
}

// pageOrigin judges the request's Origin as a key of the session type t will be judged
// (verdict.Facts.OriginAllowed) against the project's allowed origins, and says why it
// is refused.
func pageOrigin(ctx context.Context, t *keyformat.Type, projectID string, allowed []string) error {
	origin := callmeta.Origin(ctx)
	facts := verdict.Facts{Browser: t.Browser, BrowserOnly: t.BrowserOnly(), AllowedOrigins: allowed}
	switch {
	case facts.OriginAllowed(origin):
		return nil
	case origin == "":
		return apierr.New(apierr.OriginNotAllowed, "session keys are for web pages: this request has no Origin header (a server sends data with its ingest key instead)")
	case len(allowed) == 0:
		return apierr.New(apierr.OriginNotAllowed, "project %s lists no allowed_origins, so no page may use a session key: add the page's origin to the project's allowed_origins", projectID)
	default:
		return apierr.New(apierr.OriginNotAllowed, "origin %.300q is not one of project %s's allowed_origins", origin, projectID)
	}
}
