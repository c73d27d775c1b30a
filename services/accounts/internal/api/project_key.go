package api

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// One key per project (DESIGN "Seed schemes"; docs/keys.md, "One key per project"): when
// the keys service's profile has a per_project key type, POST /v1/projects answers the new
// project with its key, {project, key, secret}.
//
// Failure semantics, which a caller can rely on: a project is never left without its key
// by a failed call. The project is created first (the keys service reads it back from
// here before it mints), then its key is minted (keys' MintProjectKey); if that fails for
// any reason, the keys service being down included, the project is deleted again
// (project.deleted) and the call fails, 503 unavailable (or the keys service's own 4xx,
// plan_required, account_suspended), so a retry starts afresh. Only if this process dies
// between the two steps, or the database refuses the undo too, can a project be left
// without a key; POST /v1/keys mints it then, a project without a live key taking one.
// Which type is per_project is the keys service's to say (its profile): learned from
// ListKeyTypes before the first creation, refreshed at most once a perProjectRefresh, and
// while the keys service cannot be asked the last answer stands; before any answer a
// creation is refused (503) rather than made without knowing whether it needs a key.

// perProjectRefresh is how long an answer of ListKeyTypes is used before it is asked again.
const perProjectRefresh = time.Minute

// perProjectType is what this service knows of the keys service's per_project type.
type perProjectType struct {
	mu    sync.Mutex
	known bool
	name  string // "" when the profile has none
	at    time.Time
}

var (
	errKeyTypesUnknown = &apierr.Error{
		Code: apierr.Unavailable, RetryAfter: time.Second,
		Message: "the project cannot be created right now: the keys service, which says whether a project gets a key, did not answer; nothing was created, retry shortly",
	}
	errProjectKeyNotMinted = &apierr.Error{
		Code: apierr.Unavailable, RetryAfter: time.Second,
		Message: "the project's key could not be minted right now (the keys service did not answer, or failed); the project was not kept, so nothing was created: retry shortly",
	}
)

// projectKeyType returns the name of the keys service's per_project type, "" when its
// profile has none or no keys service is configured (then projects get no key).
func (s *Service) projectKeyType(ctx context.Context) (string, error) {
	if s.cfg.KeyTypes == nil || s.cfg.LiveKeys == nil {
		return "", nil
	}
	p := &s.perProject
	p.mu.Lock()
	known, name, fresh := p.known, p.name, time.Since(p.at) < perProjectRefresh
	p.mu.Unlock()
	if known && fresh {
		return name, nil
	}
	cctx, cancel := auth.Outgoing(ctx, s.cfg.Authenticator.Operator)
	defer cancel()
	resp, err := s.cfg.KeyTypes.ListKeyTypes(cctx, &keysv1.ListKeyTypesRequest{})
	if err != nil {
		logging.From(ctx).Warn("keys: ListKeyTypes failed", zap.Bool("known_before", known), zap.Error(err))
		if known {
			return name, nil // profiles change with a redeploy, not while keys is down
		}
		return "", errKeyTypesUnknown
	}
	name = ""
	for _, t := range resp.GetKeyTypes() {
		if t.GetPerProject() {
			name = t.GetName()
		}
	}
	p.mu.Lock()
	p.known, p.name, p.at = true, name, time.Now()
	p.mu.Unlock()
	return name, nil
}

// forgetProjectKeyType makes the next creation ask the keys service again.
func (s *Service) forgetProjectKeyType() {
	s.perProject.mu.Lock()
	s.perProject.known = false
	s.perProject.mu.Unlock()
}

// mintProjectKey asks the keys service to mint the key of p, a project this call has just
// created, for caller. When it cannot, p is deleted again and the error says why (see the
// failure semantics above): the keys service's plan_required, account_suspended or
// permission_denied as it gave them, anything else 503.
func (s *Service) mintProjectKey(ctx context.Context, caller *auth.Principal, p store.Project) (*keysv1.MintProjectKeyResponse, error) {
	cctx, cancel := auth.Outgoing(ctx, s.cfg.Authenticator.Operator)
	defer cancel()
	resp, err := s.cfg.LiveKeys.MintProjectKey(cctx, &keysv1.MintProjectKeyRequest{
		AccountId: p.AccountID, ProjectId: p.ID, CreatedBy: caller.Actor(), Name: p.Name,
	})
	if err == nil {
		return resp, nil
	}
	log := logging.From(ctx)
	log.Warn("keys: MintProjectKey failed; removing the project again", zap.String("project_id", p.ID), zap.Error(err))
	// Detached from the caller: a client that gave up must not leave the project behind.
	uctx, ucancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer ucancel()
	if uerr := s.cfg.Store.UndoCreateProject(uctx, p.AccountID, p.ID, func() *eventsv1.Event {
		ev := newEvent(ctx, p.AccountID)
		ev.Payload = &eventsv1.Event_ProjectDeleted{ProjectDeleted: &eventsv1.ProjectDeleted{ProjectId: p.ID}}
		return ev
	}); uerr != nil {
		log.Error("project left without its key: its key could not be minted, nor the project removed", zap.String("project_id", p.ID), zap.Error(uerr))
		return nil, &apierr.Error{Code: apierr.Unavailable, RetryAfter: time.Second, Message: "project " + p.ID +
			" was created but its key could not be minted: create it with POST /v1/keys (it is the project's one key), or delete the project"}
	}
	s.cfg.Notify()
	e := apierr.FromError(err)
	switch e.Code {
	case apierr.PlanRequired, apierr.AccountSuspended, apierr.PermissionDenied:
		return nil, e
	case apierr.NotFound:
		// The keys service's profile may have changed (no per_project type any more):
		// learn it again before the next creation.
		s.forgetProjectKeyType()
	}
	return nil, errProjectKeyNotMinted
}
