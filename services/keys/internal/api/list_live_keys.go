package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
)

// defaultLiveKeys is how many live keys ListLiveKeys lists when page_size is unset.
const defaultLiveKeys = 20

// internalServer implements keysv1.InternalServiceServer: calls for the other Latchkey
// services, with the operator token.
type internalServer struct {
	keysv1.UnimplementedInternalServiceServer
	s *Server
}

// Internal returns the keys service's InternalService.
func (s *Server) Internal() keysv1.InternalServiceServer { return internalServer{s: s} }

// ListLiveKeys lists the keys of a project (or of some of its environments) that still
// work, so that accounts can refuse to drop an environment that has them: keys revoked,
// expired, or minted in a stay of their environment that has ended are not listed.
// Operator only; accounts' errors (unavailable) pass through.
func (i internalServer) ListLiveKeys(ctx context.Context, req *keysv1.ListLiveKeysRequest) (*keysv1.ListLiveKeysResponse, error) {
	if _, err := auth.RequireOperator(ctx); err != nil {
		return nil, err
	}
	if !ids.Valid(ids.Account, req.GetAccountId()) || !ids.Valid(ids.Project, req.GetProjectId()) {
		return nil, invalid("account_id and project_id must be an account id (acc_…) and a project id (prj_…)")
	}
	for _, env := range req.GetEnvironments() {
		if err := checkText("environments", env, 32); err != nil {
			return nil, err
		}
	}
	limit := defaultLiveKeys
	if req.GetPageSize() != 0 {
		n, err := pageSize(req.GetPageSize())
		if err != nil {
			return nil, err
		}
		limit = n
	}
	// A key minted in a stay of its environment that has ended works no more (verify):
	// judge by the project as accounts has it now. A deleted project has no live keys.
	proj, err := i.s.dir.Project(ctx, req.GetAccountId(), req.GetProjectId(), true)
	switch {
	case apierr.IsCode(err, apierr.NotFound):
		return &keysv1.ListLiveKeysResponse{}, nil
	case err != nil:
		return nil, err
	}
	keys, more, err := i.s.store.Live(ctx, req.GetAccountId(), req.GetProjectId(), req.GetEnvironments(), environments(proj), limit)
	if err != nil {
		return nil, err
	}
	now := i.s.now()
	resp := &keysv1.ListLiveKeysResponse{Keys: make([]*keysv1.Key, len(keys)), More: more}
	for j, k := range keys {
		resp.Keys[j] = toProto(k, now)
	}
	return resp, nil
}
