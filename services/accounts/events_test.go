package accounts_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestEvents(t *testing.T) {
	e := start(t)
	u := e.api.SignUp("gina")

	// Create: project.updated with the defaults.
	created := e.api.Call("POST", "/v1/projects", u.Token, map[string]any{
		"name": "p", "allowed_origins": []string{"https://a.example.com"},
	}, "X-Request-Id", "req-create-1").OK(t)
	pid := testutil.Str(created, "project", "id")
	ev := e.lastEvent("project.updated", func(ev *eventsv1.Event) bool {
		return ev.GetProjectUpdated().GetProjectId() == pid
	})
	require.Equal(t, u.AccountID, ev.GetAccountId())
	require.Equal(t, "req-create-1", ev.GetRequestId())
	require.NotEmpty(t, ev.GetId())
	require.Equal(t, []string{"dev", "stg", "prd"}, ev.GetProjectUpdated().GetEnvironments())
	require.Equal(t, []string{"https://a.example.com"}, ev.GetProjectUpdated().GetAllowedOrigins())

	// Update: project.updated with the new lists. (Environments are added: dropping one
	// asks the keys service, which this harness does not run.)
	e.api.Call("PATCH", "/v1/projects/"+pid, u.Token, map[string]any{
		"environments": []string{"dev", "stg", "prd", "qa"}, "allowed_origins": []string{"https://b.example.com:8443"},
	}, "X-Request-Id", "req-update-1").OK(t)
	ev = e.lastEvent("project.updated", func(ev *eventsv1.Event) bool {
		return ev.GetRequestId() == "req-update-1"
	})
	require.Equal(t, u.AccountID, ev.GetAccountId())
	require.Equal(t, pid, ev.GetProjectUpdated().GetProjectId())
	require.Equal(t, []string{"dev", "stg", "prd", "qa"}, ev.GetProjectUpdated().GetEnvironments())
	// With no keys service to say which keys are live, no environment is dropped.
	e.api.Call("PATCH", "/v1/projects/"+pid, u.Token, map[string]any{"environments": []string{"prd"}}).RequireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
	require.Equal(t, []string{"https://b.example.com:8443"}, ev.GetProjectUpdated().GetAllowedOrigins())

	// Delete: project.deleted.
	e.api.Call("DELETE", "/v1/projects/"+pid, u.Token, nil).OK(t)
	ev = e.lastEvent("project.deleted", func(ev *eventsv1.Event) bool {
		return ev.GetProjectDeleted().GetProjectId() == pid
	})
	require.Equal(t, u.AccountID, ev.GetAccountId())

	// SetPlan: account.plan_changed with both plans.
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).OK(t)
	ev = e.lastEvent("account.plan_changed", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.AccountID })
	require.Equal(t, "pro", ev.GetAccountPlanChanged().GetPlan())
	require.Equal(t, "free", ev.GetAccountPlanChanged().GetPreviousPlan())

	// Suspend: account.suspended with the reason.
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":suspend", e.cfg.OperatorToken, map[string]any{"reason": "unpaid"}).OK(t)
	ev = e.lastEvent("account.suspended", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.AccountID })
	require.Equal(t, "unpaid", ev.GetAccountSuspended().GetReason())

	// Reinstate: account.reinstated with the reason.
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":reinstate", e.cfg.OperatorToken, map[string]any{"reason": "paid"}).OK(t)
	ev = e.lastEvent("account.reinstated", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.AccountID })
	require.Equal(t, "paid", ev.GetAccountReinstated().GetReason())

	// Every event was published once.
	counts := e.eventCounts()
	require.Equal(t, uint64(2), counts["project.updated"])
	require.Equal(t, uint64(1), counts["project.deleted"])
	require.Equal(t, uint64(1), counts["account.plan_changed"])
	require.Equal(t, uint64(1), counts["account.suspended"])
	require.Equal(t, uint64(1), counts["account.reinstated"])

	// Setting the same plan or status again writes no event. The outbox publishes in
	// order, so once a later event is in the stream, any from these calls would be too.
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).OK(t)
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":reinstate", e.cfg.OperatorToken, map[string]any{}).OK(t)
	other := e.api.SignUp("hal")
	e.api.Call("POST", "/v1/admin/accounts/"+other.AccountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).OK(t)
	e.lastEvent("account.plan_changed", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == other.AccountID })
	counts = e.eventCounts()
	require.Equal(t, uint64(2), counts["account.plan_changed"])
	require.Equal(t, uint64(1), counts["account.suspended"])
	require.Equal(t, uint64(1), counts["account.reinstated"])
	e.requireOutboxDrained()
}
