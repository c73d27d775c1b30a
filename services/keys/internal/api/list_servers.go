package api

import (
	"context"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// ListServers lists the caller's servers that are not deleted, newest first, narrowed by
// project, exact name, exact hostname and tag. The page token is bound to the account
// and the filters as ListKeys's is.
func (v serversServer) ListServers(ctx context.Context, req *keysv1.ListServersRequest) (*keysv1.ListServersResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, capServers)
	if err != nil {
		return nil, err
	}
	if _, err := s.serversType(); err != nil {
		return nil, err
	}
	limit, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	f := store.ServerFilter{ProjectID: req.GetProjectId(), Name: req.GetName(), Hostname: req.GetHostname(), Tag: req.GetTag(), Limit: limit}
	if f.ProjectID != "" {
		if err := ids.Check("project_id", ids.Project, f.ProjectID); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		field, v string
		max      int
	}{{"name", f.Name, maxName}, {"hostname", f.Hostname, maxHostname}, {"tag", f.Tag, maxTag}} {
		if err := checkText(c.field, c.v, c.max); err != nil {
			return nil, err
		}
	}
	binding := []string{"keys.ListServers", p.AccountID, f.ProjectID, f.Name, f.Hostname, f.Tag}
	if tok := req.GetPageToken(); tok != "" {
		after, err := s.pages.Decode(tok, binding...)
		if err != nil || !ids.Valid(ids.Server, string(after)) {
			return nil, errBadPageToken
		}
		f.After = string(after)
	}
	servers, last, err := s.store.ListServers(ctx, p.AccountID, f)
	if err != nil {
		return nil, err
	}
	next := ""
	if last != "" {
		next = s.pages.Encode([]byte(last), binding...)
	}
	now := s.now()
	out := make([]*keysv1.Server, len(servers))
	for i, srv := range servers {
		out[i] = serverProto(srv, "", now)
	}
	return &keysv1.ListServersResponse{Servers: out, NextPageToken: next}, nil
}
