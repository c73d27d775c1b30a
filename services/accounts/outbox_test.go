package accounts_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/natsx"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestHostileAccountIDsDoNotStallEvents: admin calls naming a malformed account id (a
// space, wildcards, 5,000 characters), with and without credentials, are refused with 400
// and their audit events go out under "_"; every later event (a sign-up's audit event, a
// real suspension) is published at once, and the outbox drains.
func TestHostileAccountIDsDoNotStallEvents(t *testing.T) {
	e := start(t)
	hostile := []string{"a b", "acc_*", "acc_x.>", "acc_01\r\nPUB x 1", strings.Repeat("a", 5000)}
	for _, id := range hostile {
		for _, token := range []string{"", e.cfg.OperatorToken} {
			for _, action := range []string{":suspend", ":reinstate", ":setPlan"} {
				r := e.api.Call("POST", "/v1/admin/accounts/"+url.PathEscape(id)+action, token, map[string]any{"plan": "pro"})
				r.RequireError(t, http.StatusBadRequest, inv)
				require.Less(t, len(r.Raw), 1000, "the id is clipped in the message")
			}
		}
	}
	u := e.api.SignUp("after")
	e.api.Call("POST", "/v1/admin/accounts/"+u.AccountID+":suspend", e.cfg.OperatorToken, map[string]any{"reason": "test"}).OK(t)
	e.lastEvent("account.suspended", func(ev *eventsv1.Event) bool { return ev.GetAccountId() == u.AccountID })
	e.requireOutboxDrained()

	ctx := context.Background()
	audit, err := e.js.Stream(ctx, natsx.AuditStream(e.cfg.Namespace))
	require.NoError(t, err)
	var subjects map[string]uint64
	testutil.Eventually(t, 10*time.Second, func() bool {
		info, err := audit.Info(ctx, jetstream.WithSubjectFilter(e.cfg.Namespace+".audit.>"))
		if err != nil {
			return false
		}
		subjects = info.State.Subjects
		return subjects[natsx.AuditSubject(e.cfg.Namespace, "")] >= uint64(len(hostile)*6) &&
			subjects[natsx.AuditSubject(e.cfg.Namespace, u.AccountID)] >= 1
	}, "the refused calls' audit events under _ and the sign-up's under its account")
	require.Len(t, subjects, 2, "no other audit subject: %v", subjects)
}
