package api

import (
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
)

// AuditActions are the keys calls written to the audit log. VerifyKey and ListKeyTypes are
// not among them: gateways and backends call them to check keys, not to manage them.
var AuditActions = map[string]auditlog.Action{
	keysv1.KeysService_CreateKey_FullMethodName: {Name: "keys.create", Resource: "key", ResourceID: []string{"key.id"}},
	keysv1.KeysService_ListKeys_FullMethodName:  {Name: "keys.list", Resource: "key"},
	keysv1.KeysService_GetKey_FullMethodName:    {Name: "keys.get", Resource: "key", ResourceID: []string{"id"}},
	keysv1.KeysService_UpdateKey_FullMethodName: {Name: "keys.update", Resource: "key", ResourceID: []string{"key.id"}},
	keysv1.KeysService_RotateKey_FullMethodName: {
		Name: "keys.rotate", Resource: "key", ResourceID: []string{"previous.id", "id"},
		Details: map[string]string{"new_key_id": "key.id"},
	},
	// Under no account: nobody signed in, and the key belongs to none.
	keysv1.KeysService_CreateAnonymousKey_FullMethodName: {Name: "keys.create_anonymous", Resource: "key", ResourceID: []string{"key.id"}},
	// A replace_on_revoke key's revocation adds replacement_key_id (its transaction).
	keysv1.KeysService_RevokeKey_FullMethodName: {Name: "keys.revoke", Resource: "key", ResourceID: []string{"id", "key.id"}},
	// By a session or, with actor type project_key, by the ingest key that asked.
	keysv1.KeysService_CreateSessionKey_FullMethodName: {Name: "keys.create_session", Resource: "key", ResourceID: []string{"key.id"}},
	// The new key; the claim's transaction adds anonymous_key_id and messages_linked.
	keysv1.KeysService_ClaimKey_FullMethodName: {
		Name: "keys.claim", Resource: "key", ResourceID: []string{"key.id"},
		Details: map[string]string{"anonymous_key_id": "claimed.anonymous_key_id"},
	},
	// The adopted key (never its secret, which no path names).
	keysv1.KeysService_ImportKey_FullMethodName: {
		Name: "keys.import", Resource: "key", ResourceID: []string{"key.id"},
		Details: map[string]string{"server_id": "server_id"},
	},
	keysv1.KeysService_DeleteKey_FullMethodName: {Name: "keys.delete", Resource: "key", ResourceID: []string{"id", "key.id"}},
	// Servers (ServersService): each change's transaction adds the keys it minted or
	// revoked (key_id; new_key_id and previous_key_id; revoked_key_ids).
	keysv1.ServersService_CreateServer_FullMethodName: {
		Name: "servers.create", Resource: "server", ResourceID: []string{"server.id"},
		Details: map[string]string{"key_id": "server.key_id"},
	},
	keysv1.ServersService_ListServers_FullMethodName:  {Name: "servers.list", Resource: "server"},
	keysv1.ServersService_GetServer_FullMethodName:    {Name: "servers.get", Resource: "server", ResourceID: []string{"id"}},
	keysv1.ServersService_DeleteServer_FullMethodName: {Name: "servers.delete", Resource: "server", ResourceID: []string{"id"}},
	keysv1.ServersService_RotateServerKey_FullMethodName: {
		Name: "servers.rotate_key", Resource: "server", ResourceID: []string{"id"},
		Details: map[string]string{"new_key_id": "server.key_id", "previous_key_id": "previous.id"},
	},
	// A project's key, minted as POST /v1/projects creates the project: asked by the accounts
	// service (actor operator) for the project's creator (created_by), filed under the
	// project's account.
	keysv1.InternalService_MintProjectKey_FullMethodName: {
		Name: "keys.create", Resource: "key", ResourceID: []string{"key.id"}, Account: []string{"account_id"},
		Details: map[string]string{"project_id": "project_id", "created_by": "created_by"},
	},
}
