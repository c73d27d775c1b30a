package api

import (
	"context"
	"slices"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/pkg/postgres"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// ImportKey adopts a key minted by another system (a legacy col_ key, say), so that the
// agents deployed with it keep working: it is stored like a key CreateKey made (only its
// keyed hash; the plaintext is never echoed, logged or kept) and from then on verifies,
// ingests, rotates (to the current prefix) and revokes like any key of its type.
//
// The secret must parse under the profile (keyformat.Registry.Parse: a current or legacy
// prefix of the named type). The type must be mintable, or the profile's servers type; the
// rules of CreateKey hold for it (plan, step-up and no account key minting another for an
// account-scoped type; the binding's checks; the account-keys cap). server_id, for a key
// of the servers type only, binds it to one of the account's live servers, whose project
// it takes (project_id may then be omitted, and must otherwise be the server's), and needs
// servers:manage too (mayBindServer). Errors:
// already_exists (409) for a secret stored before (in any account); invalid_argument for
// a secret that does not parse, or is of another type, and as CreateKey; not_found for a
// server or project that is not the account's.
func (s *Server) ImportKey(ctx context.Context, req *keysv1.ImportKeyRequest) (*keysv1.ImportKeyResponse, error) {
	p, err := auth.Require(ctx, "keys:write")
	if err != nil {
		return nil, err
	}
	t, err := s.importableType(req.GetType())
	if err != nil {
		return nil, err
	}
	if req.GetSecret() == "" {
		return nil, invalid("secret is required: the key's plaintext, as the other system minted it")
	}
	parsed, err := s.types.Parse(req.GetSecret())
	if err != nil {
		// Never the secret, nor how far it got: it may be a typo of a real key.
		return nil, invalid("secret is not a key of this deployment's profile: it must carry a current or legacy prefix of the %s type (%v) and follow its rules (docs/keys.md)", t.Name, prefixesOf(t))
	}
	if parsed.Type.Name != t.Name {
		return nil, invalid("secret is a key of the %s type, not of %s", parsed.Type.Name, t.Name)
	}
	if err := checkText("name", req.GetName(), maxName); err != nil {
		return nil, err
	}
	now := s.now()
	if err := s.mayManageType(p, t, now); err != nil {
		return nil, err
	}
	projectID := req.GetProjectId()
	if req.GetServerId() != "" {
		if err := mayBindServer(p, req.GetServerId()); err != nil {
			return nil, err
		}
		if !t.Servers {
			return nil, invalid("server_id binds only keys of the servers type; %s is not it", t.Name)
		}
		if err := ids.Check("server_id", ids.Server, req.GetServerId()); err != nil {
			return nil, err
		}
		serverProject, err := s.store.ServerProject(ctx, p.AccountID, req.GetServerId())
		if err != nil {
			return nil, err
		}
		if projectID != "" && projectID != serverProject {
			return nil, invalid("server %s belongs to project %s, not to project_id", req.GetServerId(), serverProject)
		}
		projectID = serverProject
	}
	projectID, env, envAddedAt, err := s.binding(ctx, p, t, projectID, req.GetEnvironment())
	if err != nil {
		return nil, err
	}
	hash := s.hasher.Hash(req.GetSecret())
	k := &store.Key{
		ID: ids.New(ids.Key), AccountID: p.AccountID, Type: t.Name, Name: req.GetName(), Hash: hash[:],
		DisplayPrefix: keyformat.DisplayPrefix(parsed), ProjectID: projectID, Environment: env, EnvironmentAddedAt: envAddedAt,
		Capabilities: slices.Clone(t.Capabilities), CreatedBy: p.Actor(), CreatedAt: now, ServerID: req.GetServerId(),
		PerProject: t.PerProject, // an adopted key counts as the project's one key too
	}
	if err := s.insertKey(ctx, k, s.capsFor(t, false)...); err != nil {
		if postgres.Code(err) == postgres.UniqueViolation {
			return nil, errImported
		}
		return nil, err
	}
	return &keysv1.ImportKeyResponse{Key: toProto(k, now)}, nil
}

// importableType is the type a key is imported as: a mintable one, or the servers type.
func (s *Server) importableType(name string) (*keyformat.Type, error) {
	servers, hasServers := s.types.Servers()
	if hasServers && name == servers.Name {
		return servers, nil
	}
	t, err := s.mintableType(name)
	if err != nil {
		names := s.mintableNames()
		if hasServers && !slices.Contains(names, servers.Name) {
			names = append([]string{servers.Name}, names...)
		}
		if name == "" {
			return nil, invalid("type is required; one of %v", names)
		}
		return nil, invalid("unknown key type %q for an import; one of %v", name, names)
	}
	return t, nil
}

// prefixesOf lists t's prefixes, current first.
func prefixesOf(t *keyformat.Type) []string {
	return append([]string{t.Prefix}, t.LegacyPrefixes...)
}
