package api

import (
	"context"
	"slices"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/verdict"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// ListKeys lists the caller's keys, newest first. The page token holds the last id of the
// previous page, bound to the account and the filters (see pkg/pagetoken): reused with
// other filters, or made by hand, it is invalid_argument.
func (s *Server) ListKeys(ctx context.Context, req *keysv1.ListKeysRequest) (*keysv1.ListKeysResponse, error) {
	p, err := auth.Require(ctx, "keys:read")
	if err != nil {
		return nil, err
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	f := store.Filter{ProjectID: req.GetProjectId(), Environment: req.GetEnvironment(), Type: req.GetType(), Status: req.GetStatus(), Limit: limit}
	if f.ProjectID != "" && !ids.Valid(ids.Project, f.ProjectID) {
		return nil, invalid("project_id is not a project id (prj_…)")
	}
	if err := checkText("environment", f.Environment, 32); err != nil {
		return nil, err
	}
	if _, ok := s.types.Lookup(f.Type); f.Type != "" && !ok {
		return nil, invalid("unknown key type %q", f.Type)
	}
	if f.Status != "" && !slices.Contains(verdict.Statuses(), verdict.Status(f.Status)) {
		return nil, invalid("status must be one of %v", verdict.Statuses())
	}
	binding := []string{"keys.ListKeys", p.AccountID, f.ProjectID, f.Environment, f.Type, f.Status}
	if tok := req.GetPageToken(); tok != "" {
		after, err := s.pages.Decode(tok, binding...)
		if err != nil || !ids.Valid(ids.Key, string(after)) {
			return nil, errBadPageToken
		}
		f.After = string(after)
	}
	now := s.now()
	f.At = now
	keys, last, err := s.store.List(ctx, p.AccountID, f)
	if err != nil {
		return nil, err
	}
	next := ""
	if last != "" {
		next = s.pages.Encode([]byte(last), binding...)
	}
	out := make([]*keysv1.Key, len(keys))
	for i, k := range keys {
		out[i] = toProto(k, now)
	}
	return &keysv1.ListKeysResponse{Keys: out, NextPageToken: next}, nil
}
