package api

import (
	"context"
	"time"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/events"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/pkg/requestid"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// CreateKey issues a key and returns its secret, once.
func (s *Server) CreateKey(ctx context.Context, req *keysv1.CreateKeyRequest) (*keysv1.CreateKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	now := s.now()
	t, err := s.mintableType(req.GetType())
	if err != nil {
		return nil, err
	}
	if err := s.mayManageType(p, t, now); err != nil {
		return nil, err
	}
	if err := perProjectFields(t, req.GetEnvironment(), req.GetExpiresAt()); err != nil {
		return nil, err
	}
	projectID, env, envAddedAt, err := s.binding(ctx, p, t, req.GetProjectId(), req.GetEnvironment())
	if err != nil {
		return nil, err
	}
	if err := checkText("name", req.GetName(), maxName); err != nil {
		return nil, err
	}
	caps, err := capabilitiesFor(t, req.GetCapabilities())
	if err != nil {
		return nil, err
	}
	exp, err := expiry(req.GetExpiresAt(), now)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(req.GetMetadata()); err != nil {
		return nil, err
	}
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: p.AccountID, Type: t.Name, Name: req.GetName(), ProjectID: projectID,
		Environment: env, EnvironmentAddedAt: envAddedAt, Capabilities: caps, CreatedBy: p.Actor(), ExpiresAt: exp,
		Metadata: req.GetMetadata(), CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	if err := s.insertKey(ctx, k, s.capsFor(t, false)...); err != nil {
		return nil, err
	}
	return &keysv1.CreateKeyResponse{Key: toProto(k, now), Secret: secret}, nil
}

// insertKey stores a new key (made by newKey) with its key.created event, under the hourly
// caps given, in one transaction, and wakes the outbox relay. A second active key of a
// per_project type for its project is 409 already_exists (projectKeyTaken).
func (s *Server) insertKey(ctx context.Context, k *store.Key, caps ...quota.Cap) error {
	if err := s.store.Create(ctx, k, keyCreated(ctx, k), caps...); err != nil {
		return s.projectKeyTaken(ctx, k, err)
	}
	s.notify()
	return nil
}

// keyCreated is the key.created event of a new key.
func keyCreated(ctx context.Context, k *store.Key) *eventsv1.Event {
	ev := events.New(k.AccountID, requestid.From(ctx))
	ev.Payload = &eventsv1.Event_KeyCreated{KeyCreated: &eventsv1.KeyCreated{
		KeyId: k.ID, KeyHash: k.Hash, Type: k.Type, ProjectId: k.ProjectID, Environment: k.Environment, ServerId: k.ServerID,
	}}
	return ev
}

// newKey fills in a fresh id, secret, hash and display prefix on template, and marks a key
// of a per_project type as one (store.Key.PerProject).
func (s *Server) newKey(t *keyformat.Type, template *store.Key) (*store.Key, string, error) {
	secret, err := s.types.Generate(t.Name)
	if err != nil {
		return nil, "", err
	}
	parsed, err := s.types.Parse(secret)
	if err != nil {
		return nil, "", err
	}
	hash := s.hasher.Hash(secret)
	k := *template
	k.ID = ids.New(ids.Key)
	k.Hash = hash[:]
	k.DisplayPrefix = keyformat.DisplayPrefix(parsed)
	k.PerProject = t.PerProject
	return &k, secret, nil
}

func (s *Server) mintableType(name string) (*keyformat.Type, error) {
	if name == "" {
		return nil, invalid("type is required; one of %v", s.mintableNames())
	}
	t, ok := s.types.Lookup(name)
	if !ok || !t.Mintable {
		return nil, invalid("unknown key type %q; one of %v", name, s.mintableNames())
	}
	return t, nil
}

func (s *Server) mintableNames() []string {
	var names []string
	for _, t := range s.types.Types() {
		if t.Mintable {
			names = append(names, t.Name)
		}
	}
	return names
}

// mayManageType enforces the rules on management (account-scoped) keys: the plan, no key
// minting another, and a fresh step-up.
func (s *Server) mayManageType(p *auth.Principal, t *keyformat.Type, now time.Time) error {
	if t.RequiresPlan != "" && p.Kind != auth.KindOperator && p.Plan != t.RequiresPlan {
		return apierr.New(apierr.PlanRequired, "%s keys need the %s plan; this account is on %s", t.Name, t.RequiresPlan, p.Plan)
	}
	if t.Scope != keyformat.ScopeAccount {
		return nil
	}
	if p.Kind == auth.KindAccountKey {
		return errKeyMintsAccount
	}
	if p.Kind == auth.KindUser && !p.StepUpUntil.After(now) {
		return errStepUp
	}
	return nil
}

// binding checks the project and environment a key of t is bound to, and returns them with
// when the environment's current stay began, as accounts answered (zero for no
// environment, or one listed since before that was recorded): the key records it, and
// works only while the project names the same instant (verdict.Environments.Holds), so a
// key whose check raced the environment's drop is dead, whenever it is added back.
func (s *Server) binding(ctx context.Context, p *auth.Principal, t *keyformat.Type, projectID, env string) (string, string, time.Time, error) {
	var none time.Time
	if t.Scope == keyformat.ScopeAccount {
		if projectID != "" || env != "" {
			return "", "", none, invalid("%s keys belong to the account: leave project_id and environment empty", t.Name)
		}
		_, err := s.liveBinding(ctx, p.AccountID, "")
		return "", "", none, err
	}
	_, addedAt, err := s.projectBinding(ctx, p.AccountID, t, projectID, env)
	if err != nil {
		return "", "", none, err
	}
	return projectID, env, addedAt, nil
}

// projectBinding is binding for a key of t bound to a project (t.Scope not account): it
// checks projectID and env (env may be "" unless t.Scope is environment) and returns the
// project as accounts answered it, with when env's current stay began.
func (s *Server) projectBinding(ctx context.Context, accountID string, t *keyformat.Type, projectID, env string) (*accountsv1.Project, time.Time, error) {
	var none time.Time
	if projectID == "" {
		return nil, none, invalid("project_id is required for %s keys", t.Name)
	}
	if err := ids.Check("project_id", ids.Project, projectID); err != nil {
		return nil, none, err
	}
	if env == "" && t.Scope == keyformat.ScopeEnvironment {
		return nil, none, invalid("environment is required for %s keys", t.Name)
	}
	proj, err := s.liveBinding(ctx, accountID, projectID)
	if err != nil {
		return nil, none, err
	}
	if env == "" {
		return proj, none, nil
	}
	addedAt, listed := environments(proj)[env]
	if !listed {
		return nil, none, invalid("environment %q is not one of the project's: %v", env, proj.GetEnvironments())
	}
	return proj, addedAt, nil
}

// liveBinding is the one check of where a key may be minted (created or rotated): the
// account exists and is not suspended and, for a project key (projectID not ""), the
// project exists; it returns the project (nil for an account key). Minting is rare, so
// both are read fresh from accounts: a key is never minted on a cached answer. Errors:
// account_suspended (403); not_found (404) for a project that does not exist or was
// deleted; accounts' own errors (unavailable) pass through.
func (s *Server) liveBinding(ctx context.Context, accountID, projectID string) (*accountsv1.Project, error) {
	var (
		proj *accountsv1.Project
		acct *accountsv1.Account
		err  error
	)
	if projectID == "" {
		acct, err = s.dir.Account(ctx, accountID, true)
	} else {
		proj, acct, err = s.dir.ProjectAndAccount(ctx, accountID, projectID, true)
	}
	switch {
	case apierr.IsCode(err, apierr.NotFound) && projectID != "":
		return nil, apierr.New(apierr.NotFound, "project %s does not exist (it may have been deleted): no key can be minted for it", projectID)
	case err != nil:
		return nil, apierr.FromError(err)
	case acct.GetStatus() == "suspended":
		return nil, errSuspended
	}
	return proj, nil
}

// environments is what proj says about its environments, for verdict.Environments.Holds:
// every one it lists, with when it was last added (zero when accounts has no entry).
func environments(proj *accountsv1.Project) verdict.Environments {
	out := make(verdict.Environments, len(proj.GetEnvironments()))
	for _, e := range proj.GetEnvironments() {
		var at time.Time
		if ts := proj.GetEnvironmentsAddedAt()[e]; ts != nil {
			at = ts.AsTime()
		}
		out[e] = at
	}
	return out
}

// capsFor is the hourly caps minting a key of t takes: every rotation counts against the
// rotations cap, and every account key created or rotated against the account-keys cap.
func (s *Server) capsFor(t *keyformat.Type, rotation bool) []quota.Cap {
	var caps []quota.Cap
	if rotation {
		caps = append(caps, s.caps.Rotations)
	}
	if t.Scope == keyformat.ScopeAccount {
		caps = append(caps, s.caps.AccountKeys)
	}
	return caps
}
