package api

import (
	"context"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// Authenticate resolves a session token for another service. It needs no bearer of its
// own: it tells the caller nothing the token's holder could not learn with it.
func (s internalServer) Authenticate(ctx context.Context, req *accountsv1.AuthenticateRequest) (*accountsv1.AuthenticateResponse, error) {
	if req.GetToken() == "" {
		return nil, invalid("token is required")
	}
	p, err := s.cfg.Authenticator.ResolveSession(ctx, req.GetToken())
	if err != nil {
		return nil, err
	}
	switch {
	case p == nil:
		return nil, auth.ErrBadSession
	case p.Suspended:
		return nil, auth.ErrSuspended
	}
	return &accountsv1.AuthenticateResponse{Principal: &accountsv1.Principal{
		AccountId:       p.AccountID,
		UserId:          p.UserID,
		SessionId:       p.SessionID,
		Plan:            p.Plan,
		AccountStatus:   store.StatusActive,
		StepUpExpiresAt: ts(p.StepUpUntil),
	}}, nil
}

// LookupAccount reads any account (operator and services only).
func (s internalServer) LookupAccount(ctx context.Context, req *accountsv1.LookupAccountRequest) (*accountsv1.LookupAccountResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if err := ids.Check("account_id", ids.Account, req.GetAccountId()); err != nil {
		return nil, err
	}
	a, err := s.cfg.Store.Account(ctx, req.GetAccountId())
	if err != nil {
		return nil, storeErr(err, errAccountNotFound)
	}
	return &accountsv1.LookupAccountResponse{Account: accountPB(a)}, nil
}

// LookupProject reads a project of the given account (operator and services only); a
// project of another account is not found.
func (s internalServer) LookupProject(ctx context.Context, req *accountsv1.LookupProjectRequest) (*accountsv1.LookupProjectResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if err := ids.Check("account_id", ids.Account, req.GetAccountId()); err != nil {
		return nil, err
	}
	if err := ids.Check("project_id", ids.Project, req.GetProjectId()); err != nil {
		return nil, err
	}
	p, err := s.cfg.Store.Project(ctx, req.GetAccountId(), req.GetProjectId())
	if err != nil {
		return nil, storeErr(err, errProjectNotFound)
	}
	a, err := s.cfg.Store.Account(ctx, req.GetAccountId())
	if err != nil {
		return nil, storeErr(err, errAccountNotFound)
	}
	return &accountsv1.LookupProjectResponse{Project: projectPB(p), Account: accountPB(a)}, nil
}

// maxLookupMany bounds the projects, and the accounts, of one LookupMany call.
const maxLookupMany = 1000

// LookupMany reads several projects and accounts at once (operator and services only): the
// keys service's batched lookups ask for everything their concurrent calls need in one
// call. What does not exist, is another account's project or is not even an id of its
// kind is left out, so that one caller's entry never fails the others' in the same batch.
func (s internalServer) LookupMany(ctx context.Context, req *accountsv1.LookupManyRequest) (*accountsv1.LookupManyResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if len(req.GetProjects()) > maxLookupMany || len(req.GetAccountIds()) > maxLookupMany {
		return nil, invalid("at most %d projects and %d accounts per call", maxLookupMany, maxLookupMany)
	}
	refs := make([]store.ProjectRef, 0, len(req.GetProjects()))
	for _, p := range req.GetProjects() {
		if ids.Valid(ids.Account, p.GetAccountId()) && ids.Valid(ids.Project, p.GetProjectId()) {
			refs = append(refs, store.ProjectRef{AccountID: p.GetAccountId(), ProjectID: p.GetProjectId()})
		}
	}
	accountIDs := make([]string, 0, len(req.GetAccountIds()))
	for _, id := range req.GetAccountIds() {
		if ids.Valid(ids.Account, id) {
			accountIDs = append(accountIDs, id)
		}
	}
	ps, as, err := s.cfg.Store.LookupMany(ctx, refs, accountIDs)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	resp := &accountsv1.LookupManyResponse{
		Projects: make([]*accountsv1.Project, len(ps)), Accounts: make([]*accountsv1.Account, len(as)),
	}
	for i := range ps {
		resp.Projects[i] = projectPB(ps[i])
	}
	for i := range as {
		resp.Accounts[i] = accountPB(as[i])
	}
	return resp, nil
}
