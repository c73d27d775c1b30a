package api

import (
	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
)

// AuditActions are the keys calls written to the audit log. VerifyKey is not among them:
// it is a check run on behalf of gateways and backends, not a management call.
var AuditActions = map[string]auditlog.Action{
	keysv1.KeysService_CreateKey_FullMethodName: {Name: "keys.create", Resource: "key", ResourceID: []string{"key.id"}},
	keysv1.KeysService_ListKeys_FullMethodName:  {Name: "keys.list", Resource: "key"},
	keysv1.KeysService_GetKey_FullMethodName:    {Name: "keys.get", Resource: "key", ResourceID: []string{"id"}},
	keysv1.KeysService_UpdateKey_FullMethodName: {Name: "keys.update", Resource: "key", ResourceID: []string{"key.id"}},
	keysv1.KeysService_RotateKey_FullMethodName: {
		Name: "keys.rotate", Resource: "key", ResourceID: []string{"previous.id", "id"},
		Details: map[string]string{"new_key_id": "key.id"},
	},
	keysv1.KeysService_RevokeKey_FullMethodName:    {Name: "keys.revoke", Resource: "key", ResourceID: []string{"id", "key.id"}},
	keysv1.KeysService_ListKeyTypes_FullMethodName: {Name: "keys.list_types", Resource: "key_type"},
}
