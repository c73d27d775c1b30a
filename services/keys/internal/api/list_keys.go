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

// ListKeys lists the caller's keys, newest first.
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
	if req.GetPageToken() != "" {
		after, ok := store.DecodeCursor(req.GetPageToken())
		if !ok || !ids.Valid(ids.Key, after) {
			return nil, errBadPageToken
		}
		f.After = after
	}
	now := s.now()
	f.At = now
	keys, next, err := s.store.List(ctx, p.AccountID, f)
	if err != nil {
		return nil, err
	}
	out := make([]*keysv1.Key, len(keys))
	for i, k := range keys {
		out[i] = toProto(k, now)
	}
	return &keysv1.ListKeysResponse{Keys: out, NextPageToken: next}, nil
}
