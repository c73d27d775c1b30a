package api

import (
	"context"
	"slices"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// CreateServer makes a server of one of the caller's projects and its collector key (a
// key of the profile's servers type, bound to the project and to the server), in one
// transaction with the key's key.created event, and returns the key's plaintext in
// server.api_key, once. It takes the hourly creates cap. Errors: not_found for a profile
// without a servers type and for a project that is not the account's; invalid_argument
// for the fields (checkServerFields) and project_id; plan_required when the type needs a
// plan; rate_limited (tier hourly) at the cap.
func (v serversServer) CreateServer(ctx context.Context, req *keysv1.CreateServerRequest) (*keysv1.CreateServerResponse, error) {
	s := v.s
	p, err := auth.Require(ctx, capServers)
	if err != nil {
		return nil, err
	}
	t, err := s.serversType()
	if err != nil {
		return nil, err
	}
	tags, err := checkServerFields(req.GetName(), req.GetHostname(), req.GetTags())
	if err != nil {
		return nil, err
	}
	now := s.now()
	if err := s.mayManageType(p, t, now); err != nil {
		return nil, err
	}
	// The project check of every key bound to a project (CreateKey's): live, the account's.
	if _, _, err := s.projectBinding(ctx, p.AccountID, t, req.GetProjectId(), ""); err != nil {
		return nil, err
	}
	srv := &store.Server{
		ID: ids.New(ids.Server), AccountID: p.AccountID, ProjectID: req.GetProjectId(), Name: req.GetName(),
		Hostname: req.GetHostname(), Tags: tags, CreatedAt: now, CreatedBy: p.Actor(),
	}
	k, secret, err := s.newKey(t, &store.Key{
		AccountID: p.AccountID, Type: t.Name, Name: srv.Name, ProjectID: srv.ProjectID,
		Capabilities: slices.Clone(t.Capabilities), CreatedBy: p.Actor(), CreatedAt: now, ServerID: srv.ID,
	})
	if err != nil {
		return nil, err
	}
	srv.KeyID, srv.KeyDisplayPrefix = k.ID, k.DisplayPrefix
	if err := s.store.CreateServer(ctx, srv, k, keyCreated(ctx, k), s.serverCaps.Creates); err != nil {
		return nil, err
	}
	s.notify()
	return &keysv1.CreateServerResponse{Server: serverProto(srv, secret, now)}, nil
}
