package accounts_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	accountsv1 "github.com/latchkey/latchkey/gen/latchkey/accounts/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
)

func TestEndToEnd(t *testing.T) {
	e := start(t)

	// Sign up: free plan, 30-day trial, active, e-mail stored lower-cased.
	const pw = "Sturdy password 7"
	signup := e.call("POST", "/v1/accounts", "", map[string]any{
		"email": "Alice@Example.COM", "password": pw, "account_name": "  Alice's team  ",
	}).ok(t)
	tok1 := str(signup, "session", "token")
	require.Regexp(t, `^lks_[0-9A-Za-z]{43}$`, tok1)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), timeAt(t, signup, "session", "expires_at"), time.Minute)
	require.Equal(t, "alice@example.com", str(signup, "user", "email"))
	require.Equal(t, "Alice's team", str(signup, "account", "name"))
	accountID := str(signup, "account", "id")
	require.True(t, strings.HasPrefix(accountID, "acc_"))
	require.Equal(t, accountID, str(signup, "user", "account_id"))

	acct := e.call("GET", "/v1/account", tok1, nil).ok(t)
	require.Equal(t, accountID, str(acct, "account", "id"))
	require.Equal(t, "free", str(acct, "account", "plan"))
	require.Equal(t, "active", str(acct, "account", "status"))
	require.WithinDuration(t, time.Now().Add(30*24*time.Hour), timeAt(t, acct, "account", "trial_ends_at"), time.Minute)

	// Log in (e-mail matched case-insensitively) to a second session.
	login := e.call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).ok(t)
	tok2 := str(login, "session", "token")
	require.NotEqual(t, tok1, tok2)
	require.Equal(t, accountID, str(login, "account", "id"))
	require.Equal(t, str(signup, "user", "id"), str(login, "user", "id"))
	e.call("GET", "/v1/account", tok2, nil).ok(t)

	// Projects: create three, one with its own environments and origins.
	p1 := e.createProject(tok1, map[string]any{"name": "first"})
	require.Equal(t, []string{"dev", "stg", "prd"}, strs(p1, "environments"))
	require.Empty(t, strs(p1, "allowed_origins"))
	require.Equal(t, accountID, str(p1, "account_id"))
	p2 := e.createProject(tok1, map[string]any{
		"name":            "second",
		"environments":    []string{"dev", "prod-eu"},
		"allowed_origins": []string{"HTTPS://App.Example.com:443", "http://localhost:3000", "http://[::1]:8080"},
	})
	require.Equal(t, []string{"dev", "prod-eu"}, strs(p2, "environments"))
	require.Equal(t, []string{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080"}, strs(p2, "allowed_origins"))
	p3 := e.createProject(tok2, map[string]any{"name": "third"})
	created := []string{str(p1, "id"), str(p2, "id"), str(p3, "id")}

	// List one at a time until the token runs out: every project once, newest first.
	var listed []string
	pageToken := ""
	for range 10 {
		q := url.Values{"page_size": {"1"}}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		page := e.call("GET", "/v1/projects?"+q.Encode(), tok1, nil).ok(t)
		ps, _ := page["projects"].([]any)
		require.Len(t, ps, 1)
		listed = append(listed, str(ps[0].(map[string]any), "id"))
		pageToken = str(page, "next_page_token")
		if pageToken == "" {
			break
		}
	}
	require.ElementsMatch(t, created, listed)
	require.True(t, slices.IsSortedFunc(listed, func(a, b string) int { return strings.Compare(b, a) }), "newest first: %v", listed)
	all := e.call("GET", "/v1/projects", tok1, nil).ok(t)
	require.Len(t, all["projects"], 3)
	require.Empty(t, str(all, "next_page_token"))

	got := e.call("GET", "/v1/projects/"+str(p2, "id"), tok1, nil).ok(t)
	require.Equal(t, p2, got["project"])

	// PATCH with only a name changes only the name.
	patched := e.call("PATCH", "/v1/projects/"+str(p2, "id"), tok1, map[string]any{"name": "renamed"}).ok(t)
	require.Equal(t, "renamed", str(patched, "project", "name"))
	require.Equal(t, strs(p2, "environments"), strs(patched, "project", "environments"))
	require.Equal(t, strs(p2, "allowed_origins"), strs(patched, "project", "allowed_origins"))
	require.Equal(t, str(p2, "created_at"), str(patched, "project", "created_at"))
	got = e.call("GET", "/v1/projects/"+str(p2, "id"), tok1, nil).ok(t)
	require.Equal(t, patched["project"], got["project"])
	// And allowed_origins alone, emptied.
	patched = e.call("PATCH", "/v1/projects/"+str(p2, "id"), tok1, map[string]any{"allowed_origins": []string{}}).ok(t)
	require.Equal(t, "renamed", str(patched, "project", "name"))
	require.Empty(t, strs(patched, "project", "allowed_origins"))

	// Delete.
	e.call("DELETE", "/v1/projects/"+str(p1, "id"), tok1, nil).ok(t)
	e.call("GET", "/v1/projects/"+str(p1, "id"), tok1, nil).requireError(t, http.StatusNotFound, apierr.NotFound)
	e.call("DELETE", "/v1/projects/"+str(p1, "id"), tok1, nil).requireError(t, http.StatusNotFound, apierr.NotFound)

	// Another account sees none of it.
	bob := e.signUp("bob")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/projects/" + str(p2, "id")},
		{"PATCH", "/v1/projects/" + str(p2, "id")},
		{"DELETE", "/v1/projects/" + str(p2, "id")},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]any{"name": "stolen"}
		}
		e.call(c.method, c.path, bob.token, body).requireError(t, http.StatusNotFound, apierr.NotFound)
	}
	require.Empty(t, e.call("GET", "/v1/projects", bob.token, nil).ok(t)["projects"])
	require.Equal(t, "renamed", str(e.call("GET", "/v1/projects/"+str(p2, "id"), tok1, nil).ok(t), "project", "name"))

	// Log out: that token stops working, the other does not.
	e.call("DELETE", "/v1/sessions/current", tok2, nil).ok(t)
	e.call("GET", "/v1/account", tok2, nil).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.call("DELETE", "/v1/sessions/current", tok2, nil).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.call("GET", "/v1/account", tok1, nil).ok(t)

	// Step-up: no window before, a wrong password opens none, the right one opens 5 minutes.
	principal, err := e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)
	require.Nil(t, principal.GetPrincipal().GetStepUpExpiresAt())
	e.call("POST", "/v1/account/verify-password", tok1, map[string]any{"password": "not it at all"}).
		requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.call("GET", "/v1/account", tok1, nil).ok(t) // a wrong step-up password does not end the session
	vp := e.call("POST", "/v1/account/verify-password", tok1, map[string]any{"password": pw}).ok(t)
	require.WithinDuration(t, time.Now().Add(5*time.Minute), timeAt(t, vp, "step_up_expires_at"), time.Minute)
	principal, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)
	pr := principal.GetPrincipal()
	require.Equal(t, accountID, pr.GetAccountId())
	require.Equal(t, str(signup, "user", "id"), pr.GetUserId())
	require.True(t, strings.HasPrefix(pr.GetSessionId(), "ses_"))
	require.Equal(t, "free", pr.GetPlan())
	require.Equal(t, "active", pr.GetAccountStatus())
	require.True(t, pr.GetStepUpExpiresAt().AsTime().After(time.Now().Add(4*time.Minute)))
	require.Equal(t, timeAt(t, vp, "step_up_expires_at"), pr.GetStepUpExpiresAt().AsTime())

	// Authenticate turns away a revoked session, garbage and an empty token.
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok2})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: "lks_nope"})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Internal lookups: operator only, and a project only within its account.
	_, err = e.internal().LookupAccount(t.Context(), &accountsv1.LookupAccountRequest{AccountId: accountID})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	la, err := e.internal().LookupAccount(e.operatorCtx(), &accountsv1.LookupAccountRequest{AccountId: accountID})
	require.NoError(t, err)
	require.Equal(t, "free", la.GetAccount().GetPlan())
	lp, err := e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: accountID, ProjectId: str(p2, "id")})
	require.NoError(t, err)
	require.Equal(t, "renamed", lp.GetProject().GetName())
	_, err = e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: bob.accountID, ProjectId: str(p2, "id")})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.True(t, apierr.IsCode(err, apierr.NotFound))
	_, err = e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: accountID, ProjectId: "nope"})
	require.True(t, apierr.IsCode(err, apierr.InvalidArgument))

	// Operator: plan and suspension.
	setPlan := "/v1/admin/accounts/" + accountID + ":setPlan"
	suspend := "/v1/admin/accounts/" + accountID + ":suspend"
	e.call("POST", setPlan, "wrong-operator-token-123", map[string]any{"plan": "pro"}).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.call("POST", setPlan, tok1, map[string]any{"plan": "pro"}).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	sp := e.call("POST", setPlan, e.cfg.OperatorToken, map[string]any{"plan": "pro"}).ok(t)
	require.Equal(t, "pro", str(sp, "account", "plan"))
	require.Equal(t, "pro", str(e.call("GET", "/v1/account", tok1, nil).ok(t), "account", "plan"))

	e.call("POST", suspend, "wrong-operator-token-123", map[string]any{"reason": "abuse"}).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	su := e.call("POST", suspend, e.cfg.OperatorToken, map[string]any{"reason": "abuse"}).ok(t)
	require.Equal(t, "suspended", str(su, "account", "status"))
	// Again: no change, no error.
	e.call("POST", suspend, e.cfg.OperatorToken, map[string]any{}).ok(t)

	e.call("GET", "/v1/account", tok1, nil).requireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.call("GET", "/v1/projects", tok1, nil).requireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).
		requireError(t, http.StatusForbidden, apierr.AccountSuspended)
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.True(t, apierr.IsCode(err, apierr.AccountSuspended), "%v", err)
	// Bob is unaffected.
	e.call("GET", "/v1/account", bob.token, nil).ok(t)

	// Reinstated, the account works again: its session, signing in, the internal lookups.
	reinstate := "/v1/admin/accounts/" + accountID + ":reinstate"
	// Not by the account itself: its session is refused as suspended before anything else.
	e.call("POST", reinstate, tok1, map[string]any{}).requireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.call("POST", reinstate, bob.token, map[string]any{}).requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	re := e.call("POST", reinstate, e.cfg.OperatorToken, map[string]any{"reason": "paid"}).ok(t)
	require.Equal(t, "active", str(re, "account", "status"))
	e.call("POST", reinstate, e.cfg.OperatorToken, map[string]any{}).ok(t) // again: no change, no error
	e.call("GET", "/v1/account", tok1, nil).ok(t)
	e.call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).ok(t)
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)

	e.requireNoSecretsLogged(pw, tok1, tok2, bob.token, bob.password, e.cfg.OperatorToken)
}

// Sign-up and login must say the same thing for an unknown e-mail and a wrong password.
func TestLoginDoesNotRevealWhichPartIsWrong(t *testing.T) {
	e := start(t)
	u := e.signUp("carol")
	wrongPW := e.call("POST", "/v1/sessions", "", map[string]any{"email": u.email, "password": "Wrong password 1"})
	wrongPW.requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	noUser := e.call("POST", "/v1/sessions", "", map[string]any{"email": "nobody@example.com", "password": "Wrong password 1"})
	noUser.requireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	require.Equal(t, wrongPW.message(), noUser.message())

	e.call("POST", "/v1/accounts", "", map[string]any{"email": strings.ToUpper(u.email), "password": u.password, "account_name": "dup"}).
		requireError(t, http.StatusConflict, apierr.AlreadyExists)
}
