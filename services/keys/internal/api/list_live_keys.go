package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
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
// work, so that accounts can refuse to drop an environment that has them. Operator only.
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
	keys, more, err := i.s.store.Live(ctx, req.GetAccountId(), req.GetProjectId(), req.GetEnvironments(), limit)
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
