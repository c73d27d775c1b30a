package api

import (
	"context"
	"slices"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// maxCreatedBy bounds MintProjectKeyRequest.created_by: a user or key id.
const maxCreatedBy = 64

var errNoPerProjectType = apierr.New(apierr.NotFound, "this deployment's key profile (LATCHKEY_KEY_PROFILE) has no per_project key type: projects are created without a key")

// MintProjectKey mints the key of the profile's per_project type for a project the
// accounts service has just created, which POST /v1/projects answers with the project
// (docs/keys.md, "One key per project"). The key is bound to the whole project (no
// environment), carries the type's capabilities, never expires, is named as asked and
// created by the project's creator (created_by). The project and its account are read
// fresh from accounts: not_found for a project that does not exist, account_suspended;
// the account needs the type's requires_plan (plan_required), as for POST /v1/keys. A
// project already holding a live key of the type is 409 already_exists. Operator only:
// the accounts service calls it with the operator token. Audited as keys.create in the
// project's account; key.created is published like any creation's.
func (i internalServer) MintProjectKey(ctx context.Context, req *keysv1.MintProjectKeyRequest) (*keysv1.MintProjectKeyResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	s := i.s
	if !ids.Valid(ids.Account, req.GetAccountId()) || !ids.Valid(ids.Project, req.GetProjectId()) {
		return nil, invalid("account_id and project_id must be an account id (acc_…) and a project id (prj_…)")
	}
	if req.GetCreatedBy() == "" {
		return nil, invalid("created_by is required: who created the project")
	}
	if err := checkText("created_by", req.GetCreatedBy(), maxCreatedBy); err != nil {
		return nil, err
	}
	if err := checkText("name", req.GetName(), maxName); err != nil {
		return nil, err
	}
	t, ok := s.types.PerProject()
	if !ok {
		return nil, errNoPerProjectType
	}
	if _, _, err := s.projectBinding(ctx, req.GetAccountId(), t, req.GetProjectId(), ""); err != nil {
		return nil, err
	}
	if t.RequiresPlan != "" {
		// projectBinding has just read the account fresh: the cached answer is that one.
		acct, err := s.dir.Account(ctx, req.GetAccountId(), false)
		if err != nil {
			return nil, apierr.FromError(err)
		}
		if acct.GetPlan() != t.RequiresPlan {
			return nil, apierr.New(apierr.PlanRequired, "%s keys need the %s plan; this account is on %s", t.Name, t.RequiresPlan, acct.GetPlan())
		}
	}
	now := s.now()
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: req.GetAccountId(), Type: t.Name, Name: req.GetName(), ProjectID: req.GetProjectId(),
		Capabilities: slices.Clone(t.Capabilities), CreatedBy: req.GetCreatedBy(), CreatedAt: now,
	})
	if err != nil {
		return nil, err
	}
	if err := s.insertKey(ctx, k); err != nil {
		return nil, err
	}
	return &keysv1.MintProjectKeyResponse{Key: toProto(k, now), Secret: secret}, nil
}
