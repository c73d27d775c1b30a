package api

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/keyformat"
	"github.com/latchkey/latchkey/services/keys/internal/store"
)

// Bounds of a server's fields (CreateServerRequest).
const (
	maxHostname = 253 // the longest DNS name
	maxTags     = 32
	maxTag      = 64
)

// serversServer implements keysv1.ServersServiceServer: servers and their collector keys
// (DESIGN "Seed schemes", servers and collector keys), one file per RPC like the keys
// calls (create_server.go, list_servers.go, get_server.go, delete_server.go,
// rotate_server_key.go).
type serversServer struct {
	keysv1.UnimplementedServersServiceServer
	s *Server
}

// Servers returns the keys service's ServersService.
func (s *Server) Servers() keysv1.ServersServiceServer { return serversServer{s: s} }

// capServers is the capability of every servers call (auth.Require in each handler), and
// of binding or minting a server's key through the key API (mayBindServer).
const capServers = "servers:manage"

// mayBindServer is the one rule for a key call that touches a server: importing a key
// for serverID (ImportKey) or rotating a key bound to it (RotateKey's rotateLocked, whose
// successor becomes the server's key) needs capServers besides keys:write, so an account
// key holding keys:* only cannot do through /v1/keys what /v1/servers refuses it. The
// error is auth.Require's insufficient_capability (403) naming it; a key of no server
// (serverID "") needs nothing more, and a session or the operator holds every capability.
func mayBindServer(p *auth.Principal, serverID string) error {
	if serverID == "" || p.Can(capServers) {
		return nil
	}
	return apierr.New(apierr.InsufficientCapability, "this key lacks the %q capability, which a key bound to a server (%s) needs", capServers, serverID)
}

// serversType is the profile's collector type, or errNoServers (404) when it has none.
func (s *Server) serversType() (*keyformat.Type, error) {
	t, ok := s.types.Servers()
	if !ok {
		return nil, errNoServers
	}
	return t, nil
}

// checkServerFields checks a server's name, hostname and tags, and returns the tags with
// duplicates kept once, in their first order.
func checkServerFields(name, hostname string, tags []string) ([]string, error) {
	if name == "" {
		return nil, invalid("name is required")
	}
	if err := checkText("name", name, maxName); err != nil {
		return nil, err
	}
	if err := checkText("hostname", hostname, maxHostname); err != nil {
		return nil, err
	}
	if len(tags) > maxTags {
		return nil, invalid("tags has %d entries; at most %d are allowed", len(tags), maxTags)
	}
	out := make([]string, 0, len(tags))
	for _, tag := range tags {
		if tag == "" {
			return nil, invalid("tags must not be empty strings")
		}
		if err := checkText("tag", tag, maxTag); err != nil {
			return nil, err
		}
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	return out, nil
}

// serverProto renders a stored server, with apiKey (the plaintext of its current key,
// only in the answers that mint one; "" otherwise) and its current key's status at now.
func serverProto(v *store.Server, apiKey string, now time.Time) *keysv1.Server {
	return &keysv1.Server{
		Id:               v.ID,
		Name:             v.Name,
		Hostname:         v.Hostname,
		Tags:             v.Tags,
		AccountId:        v.AccountID,
		ProjectId:        v.ProjectID,
		KeyId:            v.KeyID,
		ApiKey:           apiKey,
		KeyDisplayPrefix: v.KeyDisplayPrefix,
		CreatedAt:        timestamppb.New(v.CreatedAt),
		CreatedBy:        v.CreatedBy,
		DeletedAt:        ts(v.DeletedAt),
		KeyStatus:        v.KeyStatus(now),
	}
}
