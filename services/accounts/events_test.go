package accounts_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
)

func TestEvents(t *testing.T) {
	e := start(t)
	u := e.signUp("gina")
	hdr := func(id string) http.Header { return http.Header{"X-Request-Id": {id}} }

	// Create: project.updated with the defaults.
	created := e.callWith("POST", "/v1/projects", u.token, map[string]any{
		"name": "p", "allowed_origins": []string{"https://a.example.com"},
	}, hdr("req-create-1")).ok(t)
	pid := str(created, "project", "id")
	ev := e.lastEvent("project.updated", func(ev *eventsv1.Event) bool {
		return ev.GetProjectUpdated().GetProjectId() == pid
	})
	require.Equal(t, u.accountID, ev.GetAccountId())
	require.Equal(t, "req-create-1", ev.GetRequestId())
	require.NotEmpty(t, ev.GetId())
	require.Equal(t, []string{"dev", "stg", "prd"}, ev.GetProjectUpdated().GetEnvironments())
	require.Equal(t, []string{"https://a.example.com"}, ev.GetProjectUpdated().GetAllowedOrigins())

	// Update: project.updated with the new lists. (Environments are added: dropping one
	// asks the keys service, which this harness does not run.)
	e.callWith("PATCH", "/v1/projects/"+pid, u.token, map[string]any{
		"environments": []string{"dev", "stg", "prd", "qa"}, "allowed_origins": []string{"https://b.example.com:8443"},
	}, hdr("req-update-1")).ok(t)
	ev = e.lastEvent("project.updated", func(ev *eventsv1.Event) bool {
		return ev.GetRequestId() == "req-update-1"
	})
	require.Equal(t, u.accountID, ev.GetAccountId())
	require.Equal(t, pid, ev.GetProjectUpdated().GetProjectId())
	require.Equal(t, []string{"dev", "stg", "prd", "qa"}, ev.GetProjectUpdated().GetEnvironments())
	// With no keys service to say which keys are live, no environment is dropped.
	e.call("PATCH", "/v1/projects/"+pid, u.token, map[string]any{"environments": []string{"prd"}}).requireError(t, http.StatusServiceUnavailable, apierr.Unavailable)
	require.Equal(t, []string{"https://b.example.com:8443"}, ev.GetProjectUpdated().GetAllowedOrigins())

	// Delete: project.deleted.
	e.call("DELETE", "/v1/projects/"+pid, u.token, nil).ok(t)
	ev = e.lastEvent("project.deleted", func(ev *eventsv1.Event) bool {
		return ev.GetProjectDeleted().GetProjectId() == pid
	})
	require.Equal(t, u.accountID, ev.GetAccountId())

	// SetPlan: account.plan_changed with both plans.
	e.call("POST", "/v1/admin/accounts/"+u.accountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).ok(t)
	ev = e.lastEvent("account.plan_changed", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.accountID })
	require.Equal(t, "pro", ev.GetAccountPlanChanged().GetPlan())
	require.Equal(t, "free", ev.GetAccountPlanChanged().GetPreviousPlan())

	// Suspend: account.suspended with the reason.
	e.call("POST", "/v1/admin/accounts/"+u.accountID+":suspend", e.cfg.OperatorToken, map[string]any{"reason": "unpaid"}).ok(t)
	ev = e.lastEvent("account.suspended", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.accountID })
	require.Equal(t, "unpaid", ev.GetAccountSuspended().GetReason())

	// Reinstate: account.reinstated with the reason.
	e.call("POST", "/v1/admin/accounts/"+u.accountID+":reinstate", e.cfg.OperatorToken, map[string]any{"reason": "paid"}).ok(t)
	ev = e.lastEvent("account.reinstated", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.accountID })
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
	e.call("POST", "/v1/admin/accounts/"+u.accountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).ok(t)
	e.call("POST", "/v1/admin/accounts/"+u.accountID+":reinstate", e.cfg.OperatorToken, map[string]any{}).ok(t)
	other := e.signUp("hal")
	e.call("POST", "/v1/admin/accounts/"+other.accountID+":setPlan", e.cfg.OperatorToken, map[string]any{"plan": "pro"}).ok(t)
	e.lastEvent("account.plan_changed", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == other.accountID })
	counts = e.eventCounts()
	require.Equal(t, uint64(2), counts["account.plan_changed"])
	require.Equal(t, uint64(1), counts["account.suspended"])
	require.Equal(t, uint64(1), counts["account.reinstated"])
	e.requireOutboxDrained()
}
