package api

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/logging"
	"github.com/latchkey/latchkey/pkg/quota"
	"github.com/latchkey/latchkey/services/accounts/internal/store"
)

// Capabilities an account key needs for project calls (users hold every one).
const (
	capProjectsRead  = "projects:read"
	capProjectsWrite = "projects:write"
)

// Limits on a project.
const (
	maxEnvironments   = 20
	maxOrigins        = 50
	maxOriginLen      = 300
	defaultPageSize   = 50
	maxPageSize       = 100
	maxNamedKeys      = 10 // live keys named in a refusal to drop an environment
	environmentSyntax = `^[a-z][a-z0-9-]{0,31}$`
)

var (
	defaultEnvironments = []string{"dev", "stg", "prd"}
	environmentRE       = regexp.MustCompile(environmentSyntax)
	hostLabelRE         = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// parseEnvironments checks a list of environment names: each matches environmentSyntax,
// no repeats, 1 to 20 of them.
func parseEnvironments(envs []string) ([]string, error) {
	if len(envs) == 0 {
		return nil, invalid("environments must name at least one environment")
	}
	if len(envs) > maxEnvironments {
		return nil, invalid("a project has at most %d environments", maxEnvironments)
	}
	seen := make(map[string]bool, len(envs))
	for i, e := range envs {
		if !environmentRE.MatchString(e) {
			return nil, invalid("environments[%d] %q must match %s: a lower-case letter, then up to 31 lower-case letters, digits or '-'", i, clip(e), environmentSyntax)
		}
		if seen[e] {
			return nil, invalid("environments[%d] %q is listed twice", i, e)
		}
		seen[e] = true
	}
	return slices.Clone(envs), nil
}

// parseOrigins checks and normalises a list of browser origins (at most 50, no repeats
// after normalising). An empty list allows any origin.
func parseOrigins(origins []string) ([]string, error) {
	if len(origins) > maxOrigins {
		return nil, invalid("a project has at most %d allowed_origins", maxOrigins)
	}
	out := make([]string, 0, len(origins))
	for i, o := range origins {
		n, ok := normaliseOrigin(o)
		if !ok {
			return nil, invalid("allowed_origins[%d] %q is not a browser origin: expected http:// or https://, a host and an optional port, with no path, query or fragment (e.g. https://app.example.com:8443)", i, clip(o))
		}
		if slices.Contains(out, n) {
			return nil, invalid("allowed_origins[%d] %q is listed twice", i, clip(o))
		}
		out = append(out, n)
	}
	return out, nil
}

// normaliseOrigin returns the origin a browser would send for s (scheme://host[:port],
// lower case, default port dropped), or false when s is not one.
func normaliseOrigin(s string) (string, bool) {
	if s == "" || len(s) > maxOriginLen || strings.ContainsAny(s, "#?\\ \t\r\n") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Path != "" || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", false
	}
	if ip := net.ParseIP(host); ip != nil {
		if strings.Contains(host, ":") {
			if !strings.HasPrefix(u.Host, "[") {
				return "", false
			}
			host = "[" + ip.String() + "]"
		} else {
			host = ip.String()
		}
	} else if !validHostname(host) {
		return "", false
	}
	port := u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", false
		}
		port = strconv.Itoa(n)
		if scheme == "https" && n == 443 || scheme == "http" && n == 80 {
			port = ""
		}
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, true
}

// validHostname accepts ASCII DNS names (IDNs in their xn-- form), not wildcards.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if !hostLabelRE.MatchString(label) {
			return false
		}
	}
	return true
}

func projectUpdated(ctx context.Context, p store.Project) *eventsv1.Event {
	ev := newEvent(ctx, p.AccountID)
	ev.Payload = &eventsv1.Event_ProjectUpdated{ProjectUpdated: &eventsv1.ProjectUpdated{
		ProjectId:      p.ID,
		Environments:   p.Environments,
		AllowedOrigins: p.AllowedOrigins,
	}}
	return ev
}

// CreateProject creates a project in the caller's account. When the keys service's
// profile has a per_project key type, the project's key is minted with it and answered
// once, with its secret; if it cannot be, the project is not kept (project_key.go).
func (s accountsServer) CreateProject(ctx context.Context, req *accountsv1.CreateProjectRequest) (*accountsv1.CreateProjectResponse, error) {
	caller, err := auth.Require(ctx, capProjectsWrite)
	if err != nil {
		return nil, err
	}
	name, err := parseName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	envs := defaultEnvironments
	if len(req.GetEnvironments()) > 0 {
		if envs, err = parseEnvironments(req.GetEnvironments()); err != nil {
			return nil, err
		}
	}
	origins, err := parseOrigins(req.GetAllowedOrigins())
	if err != nil {
		return nil, err
	}
	keyType, err := s.projectKeyType(ctx)
	if err != nil {
		return nil, err
	}
	t := now()
	p := store.Project{
		ID:             ids.New(ids.Project),
		AccountID:      caller.AccountID,
		Name:           name,
		Environments:   slices.Clone(envs),
		AllowedOrigins: origins,
		CreatedAt:      t,
		UpdatedAt:      t,
	}
	p, err = s.cfg.Store.CreateProject(ctx, p, s.projectCap(), func(p store.Project) *eventsv1.Event { return projectUpdated(ctx, p) })
	if err != nil {
		return nil, storeErr(err, nil)
	}
	s.cfg.Notify()
	resp := &accountsv1.CreateProjectResponse{Project: projectPB(p)}
	if keyType != "" {
		k, err := s.mintProjectKey(ctx, caller, p)
		if err != nil {
			return nil, err
		}
		resp.Key, resp.Secret = k.GetKey(), k.GetSecret()
	}
	return resp, nil
}

// ListProjects pages through the caller's projects, newest first. The page token holds the
// last id of the previous page, bound to the account (see pkg/pagetoken): another
// account's token, or one made by hand, is invalid_argument.
func (s accountsServer) ListProjects(ctx context.Context, req *accountsv1.ListProjectsRequest) (*accountsv1.ListProjectsResponse, error) {
	caller, err := auth.Require(ctx, capProjectsRead)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > maxPageSize:
		return nil, invalid("page_size must be between 1 and %d (or 0 for %d)", maxPageSize, defaultPageSize)
	case size == 0:
		size = defaultPageSize
	}
	var after string
	binding := []string{"accounts.ListProjects", caller.AccountID}
	if tok := req.GetPageToken(); tok != "" {
		raw, err := s.pages.Decode(tok, binding...)
		if err != nil || !ids.Valid(ids.Project, string(raw)) {
			return nil, invalid("page_token is not one this service issued for this listing")
		}
		after = string(raw)
	}
	// One more than asked says whether another page exists.
	ps, err := s.cfg.Store.ListProjects(ctx, caller.AccountID, after, size+1)
	if err != nil {
		return nil, storeErr(err, nil)
	}
	resp := &accountsv1.ListProjectsResponse{Projects: make([]*accountsv1.Project, 0, min(len(ps), size))}
	if len(ps) > size {
		ps = ps[:size]
		resp.NextPageToken = s.pages.Encode([]byte(ps[len(ps)-1].ID), binding...)
	}
	for _, p := range ps {
		resp.Projects = append(resp.Projects, projectPB(p))
	}
	return resp, nil
}

// GetProject reads one of the caller's projects.
func (s accountsServer) GetProject(ctx context.Context, req *accountsv1.GetProjectRequest) (*accountsv1.GetProjectResponse, error) {
	caller, err := auth.Require(ctx, capProjectsRead)
	if err != nil {
		return nil, err
	}
	if err := ids.Check("id", ids.Project, req.GetId()); err != nil {
		return nil, err
	}
	p, err := s.cfg.Store.Project(ctx, caller.AccountID, req.GetId())
	if err != nil {
		return nil, storeErr(err, errProjectNotFound)
	}
	return &accountsv1.GetProjectResponse{Project: projectPB(p)}, nil
}

// UpdateProject changes the fields named in update_mask (over REST: those in the body).
func (s accountsServer) UpdateProject(ctx context.Context, req *accountsv1.UpdateProjectRequest) (*accountsv1.UpdateProjectResponse, error) {
	caller, err := auth.Require(ctx, capProjectsWrite)
	if err != nil {
		return nil, err
	}
	in := req.GetProject()
	if err := ids.Check("project.id", ids.Project, in.GetId()); err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("nothing to update: send at least one of name, environments, allowed_origins (or name them in update_mask)")
	}
	var u store.ProjectUpdate
	for _, path := range paths {
		switch path {
		case "name":
			if u.Name, err = parseName("name", in.GetName()); err != nil {
				return nil, err
			}
			u.SetName = true
		case "environments":
			if u.Environments, err = parseEnvironments(in.GetEnvironments()); err != nil {
				return nil, err
			}
			u.SetEnvironments = true
		case "allowed_origins":
			if u.AllowedOrigins, err = parseOrigins(in.GetAllowedOrigins()); err != nil {
				return nil, err
			}
			u.SetAllowedOrigins = true
		default:
			return nil, invalid("%q cannot be changed; only name, environments and allowed_origins can", clip(path))
		}
	}
	if u.SetEnvironments {
		if err := s.mayDropEnvironments(ctx, caller.AccountID, in.GetId(), u.Environments); err != nil {
			return nil, err
		}
	}
	p, err := s.cfg.Store.UpdateProject(ctx, caller.AccountID, in.GetId(), u, now(),
		func(p store.Project) *eventsv1.Event { return projectUpdated(ctx, p) })
	if err != nil {
		return nil, storeErr(err, errProjectNotFound)
	}
	s.cfg.Notify()
	return &accountsv1.UpdateProjectResponse{Project: projectPB(p)}, nil
}

// DeleteProject deletes one of the caller's projects.
func (s accountsServer) DeleteProject(ctx context.Context, req *accountsv1.DeleteProjectRequest) (*accountsv1.DeleteProjectResponse, error) {
	caller, err := auth.Require(ctx, capProjectsWrite)
	if err != nil {
		return nil, err
	}
	id := req.GetId()
	if err := ids.Check("id", ids.Project, id); err != nil {
		return nil, err
	}
	err = s.cfg.Store.DeleteProject(ctx, caller.AccountID, id, s.projectCap(), func() *eventsv1.Event {
		ev := newEvent(ctx, caller.AccountID)
		ev.Payload = &eventsv1.Event_ProjectDeleted{ProjectDeleted: &eventsv1.ProjectDeleted{ProjectId: id}}
		return ev
	})
	if err != nil {
		return nil, storeErr(err, errProjectNotFound)
	}
	s.cfg.Notify()
	return &accountsv1.DeleteProjectResponse{}, nil
}

// projectCap is the hourly cap that project creations and deletions count against
// together; the store takes it in the change's transaction.
func (s accountsServer) projectCap() quota.Cap {
	return quota.Cap{Action: "create or delete projects", PerHour: s.cfg.ProjectCap}
}

// mayDropEnvironments refuses to drop an environment that live keys (active or in rotation
// grace) are still bound to: 409 conflict naming them, so that no key outlives its
// environment. Which keys are live is the keys service's to say (its ListLiveKeys, with
// the operator token); when it cannot be asked, nothing is dropped (503). Keeping or
// adding environments asks nothing. A key minted while the drop was under way can slip
// past this check, but it is dead: keys work only in the stay of their environment they
// were minted in (environments_added_at, verdict.Environments.Holds), which the drop ends.
func (s accountsServer) mayDropEnvironments(ctx context.Context, accountID, projectID string, keep []string) error {
	cur, err := s.cfg.Store.Project(ctx, accountID, projectID)
	if err != nil {
		return storeErr(err, errProjectNotFound)
	}
	var dropped []string
	for _, e := range cur.Environments {
		if !slices.Contains(keep, e) {
			dropped = append(dropped, e)
		}
	}
	if len(dropped) == 0 {
		return nil
	}
	if s.cfg.LiveKeys == nil {
		return apierr.New(apierr.Unavailable, "no environment can be dropped here: no keys service is configured (KEYS_GRPC_ADDR) to say whether live keys use %v", dropped)
	}
	cctx, cancel := auth.Outgoing(ctx, s.cfg.Authenticator.Operator)
	defer cancel()
	resp, err := s.cfg.LiveKeys.ListLiveKeys(cctx, &keysv1.ListLiveKeysRequest{
		AccountId: accountID, ProjectId: projectID, Environments: dropped, PageSize: maxNamedKeys,
	})
	if err != nil {
		logging.From(ctx).Warn("keys: ListLiveKeys failed", zap.Error(err))
		return apierr.New(apierr.Unavailable, "environments cannot be dropped right now: the keys service, which says whether live keys use them, did not answer; retry shortly")
	}
	if len(resp.GetKeys()) == 0 {
		return nil
	}
	named := make([]string, len(resp.GetKeys()))
	for i, k := range resp.GetKeys() {
		named[i] = fmt.Sprintf("%s (%s)", k.GetId(), k.GetEnvironment())
	}
	list := strings.Join(named, ", ")
	if resp.GetMore() {
		list += " and more"
	}
	return apierr.New(apierr.Conflict, "cannot drop environment(s) %v: live keys are bound to them: %s; revoke them first (POST /v1/keys/{id}:revoke)", dropped, list)
}
