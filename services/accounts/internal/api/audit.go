package api

import (
	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/auditlog"
)

// AuditActions are the accounts calls written to the audit log: every public and operator
// call. The internal lookups other services make are not management calls.
var AuditActions = map[string]auditlog.Action{
	accountsv1.AccountsService_SignUp_FullMethodName: {
		Name: "accounts.signup", Resource: "account", ResourceID: []string{"account.id"}, Account: []string{"account.id"},
	},
	accountsv1.AccountsService_CreateSession_FullMethodName: {
		Name: "sessions.create", Resource: "user", ResourceID: []string{"user.id"}, Account: []string{"account.id"},
	},
	accountsv1.AccountsService_DeleteCurrentSession_FullMethodName: {Name: "sessions.delete", Resource: "session"},
	accountsv1.AccountsService_VerifyPassword_FullMethodName:       {Name: "account.verify_password", Resource: "session"},
	accountsv1.AccountsService_GetAccount_FullMethodName:           {Name: "account.get", Resource: "account", ResourceID: []string{"account.id"}},
	accountsv1.AccountsService_CreateProject_FullMethodName:        {Name: "projects.create", Resource: "project", ResourceID: []string{"project.id"}},
	accountsv1.AccountsService_ListProjects_FullMethodName:         {Name: "projects.list", Resource: "project"},
	accountsv1.AccountsService_GetProject_FullMethodName:           {Name: "projects.get", Resource: "project", ResourceID: []string{"id"}},
	accountsv1.AccountsService_UpdateProject_FullMethodName:        {Name: "projects.update", Resource: "project", ResourceID: []string{"project.id"}},
	accountsv1.AccountsService_DeleteProject_FullMethodName:        {Name: "projects.delete", Resource: "project", ResourceID: []string{"id"}},
	accountsv1.AdminService_SetPlan_FullMethodName: {
		Name: "admin.set_plan", Resource: "account", ResourceID: []string{"account_id"}, Account: []string{"account_id"},
		Details: map[string]string{"plan": "plan"},
	},
	accountsv1.AdminService_SuspendAccount_FullMethodName: {
		Name: "admin.suspend", Resource: "account", ResourceID: []string{"account_id"}, Account: []string{"account_id"},
	},
	accountsv1.AdminService_ReinstateAccount_FullMethodName: {
		Name: "admin.reinstate", Resource: "account", ResourceID: []string{"account_id"}, Account: []string{"account_id"},
	},
}
