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
	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestEndToEnd(t *testing.T) {
	e := start(t)

	// Sign up: free plan, 30-day trial, active, e-mail stored lower-cased.
	const pw = "Sturdy password 7"
	signup := e.api.Call("POST", "/v1/accounts", "", map[string]any{
		"email": "Alice@Example.COM", "password": pw, "account_name": "  Alice's team  ",
	}).OK(t)
	tok1 := testutil.Str(signup, "session", "token")
	require.Regexp(t, `^lks_[0-9A-Za-z]{43}$`, tok1)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), timeAt(t, signup, "session", "expires_at"), time.Minute)
	require.Equal(t, "alice@example.com", testutil.Str(signup, "user", "email"))
	require.Equal(t, "Alice's team", testutil.Str(signup, "account", "name"))
	accountID := testutil.Str(signup, "account", "id")
	require.True(t, strings.HasPrefix(accountID, "acc_"))
	require.Equal(t, accountID, testutil.Str(signup, "user", "account_id"))

	acct := e.api.Call("GET", "/v1/account", tok1, nil).OK(t)
	require.Equal(t, accountID, testutil.Str(acct, "account", "id"))
	require.Equal(t, "free", testutil.Str(acct, "account", "plan"))
	require.Equal(t, "active", testutil.Str(acct, "account", "status"))
	require.WithinDuration(t, time.Now().Add(30*24*time.Hour), timeAt(t, acct, "account", "trial_ends_at"), time.Minute)

	// Log in (e-mail matched case-insensitively) to a second session.
	login := e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).OK(t)
	tok2 := testutil.Str(login, "session", "token")
	require.NotEqual(t, tok1, tok2)
	require.Equal(t, accountID, testutil.Str(login, "account", "id"))
	require.Equal(t, testutil.Str(signup, "user", "id"), testutil.Str(login, "user", "id"))
	e.api.Call("GET", "/v1/account", tok2, nil).OK(t)

	// Projects: create three, one with its own environments and origins.
	p1 := e.createProject(tok1, map[string]any{"name": "first"})
	require.Equal(t, []string{"dev", "stg", "prd"}, strs(p1, "environments"))
	require.Empty(t, strs(p1, "allowed_origins"))
	require.Equal(t, accountID, testutil.Str(p1, "account_id"))
	p2 := e.createProject(tok1, map[string]any{
		"name":            "second",
		"environments":    []string{"dev", "prod-eu"},
		"allowed_origins": []string{"HTTPS://App.Example.com:443", "http://localhost:3000", "http://[::1]:8080"},
	})
	require.Equal(t, []string{"dev", "prod-eu"}, strs(p2, "environments"))
	require.Equal(t, []string{"https://app.example.com", "http://localhost:3000", "http://[::1]:8080"}, strs(p2, "allowed_origins"))
	p3 := e.createProject(tok2, map[string]any{"name": "third"})
	created := []string{testutil.Str(p1, "id"), testutil.Str(p2, "id"), testutil.Str(p3, "id")}

	// List one at a time until the token runs out: every project once, newest first.
	var listed []string
	pageToken := ""
	for range 10 {
		q := url.Values{"page_size": {"1"}}
		if pageToken != "" {
			q.Set("page_token", pageToken)
		}
		page := e.api.Call("GET", "/v1/projects?"+q.Encode(), tok1, nil).OK(t)
		ps, _ := page["projects"].([]any)
		require.Len(t, ps, 1)
		listed = append(listed, testutil.Str(ps[0].(map[string]any), "id"))
		pageToken = testutil.Str(page, "next_page_token")
		if pageToken == "" {
			break
		}
	}
	require.ElementsMatch(t, created, listed)
	require.True(t, slices.IsSortedFunc(listed, func(a, b string) int { return strings.Compare(b, a) }), "newest first: %v", listed)
	all := e.api.Call("GET", "/v1/projects", tok1, nil).OK(t)
	require.Len(t, all["projects"], 3)
	require.Empty(t, testutil.Str(all, "next_page_token"))

	got := e.api.Call("GET", "/v1/projects/"+testutil.Str(p2, "id"), tok1, nil).OK(t)
	require.Equal(t, p2, got["project"])

	// PATCH with only a name changes only the name.
	patched := e.api.Call("PATCH", "/v1/projects/"+testutil.Str(p2, "id"), tok1, map[string]any{"name": "renamed"}).OK(t)
	require.Equal(t, "renamed", testutil.Str(patched, "project", "name"))
	require.Equal(t, strs(p2, "environments"), strs(patched, "project", "environments"))
	require.Equal(t, strs(p2, "allowed_origins"), strs(patched, "project", "allowed_origins"))
	require.Equal(t, testutil.Str(p2, "created_at"), testutil.Str(patched, "project", "created_at"))
	got = e.api.Call("GET", "/v1/projects/"+testutil.Str(p2, "id"), tok1, nil).OK(t)
	require.Equal(t, patched["project"], got["project"])
	// And allowed_origins alone, emptied.
	patched = e.api.Call("PATCH", "/v1/projects/"+testutil.Str(p2, "id"), tok1, map[string]any{"allowed_origins": []string{}}).OK(t)
	require.Equal(t, "renamed", testutil.Str(patched, "project", "name"))
	require.Empty(t, strs(patched, "project", "allowed_origins"))

	// Delete.
	e.api.Call("DELETE", "/v1/projects/"+testutil.Str(p1, "id"), tok1, nil).OK(t)
	e.api.Call("GET", "/v1/projects/"+testutil.Str(p1, "id"), tok1, nil).RequireError(t, http.StatusNotFound, apierr.NotFound)
	e.api.Call("DELETE", "/v1/projects/"+testutil.Str(p1, "id"), tok1, nil).RequireError(t, http.StatusNotFound, apierr.NotFound)

	// Another account sees none of it.
	bob := e.api.SignUp("bob")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/projects/" + testutil.Str(p2, "id")},
		{"PATCH", "/v1/projects/" + testutil.Str(p2, "id")},
		{"DELETE", "/v1/projects/" + testutil.Str(p2, "id")},
	} {
		var body any
		if c.method == "PATCH" {
			body = map[string]any{"name": "stolen"}
		}
		e.api.Call(c.method, c.path, bob.Token, body).RequireError(t, http.StatusNotFound, apierr.NotFound)
	}
	require.Empty(t, e.api.Call("GET", "/v1/projects", bob.Token, nil).OK(t)["projects"])
	require.Equal(t, "renamed", testutil.Str(e.api.Call("GET", "/v1/projects/"+testutil.Str(p2, "id"), tok1, nil).OK(t), "project", "name"))

	// Log out: that token stops working, the other does not.
	e.api.Call("DELETE", "/v1/sessions/current", tok2, nil).OK(t)
	e.api.Call("GET", "/v1/account", tok2, nil).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.api.Call("DELETE", "/v1/sessions/current", tok2, nil).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.api.Call("GET", "/v1/account", tok1, nil).OK(t)

	// Step-up: no window before, a wrong password opens none, the right one opens 5 minutes.
	principal, err := e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)
	require.Nil(t, principal.GetPrincipal().GetStepUpExpiresAt())
	e.api.Call("POST", "/v1/account/verify-password", tok1, map[string]any{"password": "not it at all"}).
		RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.api.Call("GET", "/v1/account", tok1, nil).OK(t) // a wrong step-up password does not end the session
	vp := e.api.Call("POST", "/v1/account/verify-password", tok1, map[string]any{"password": pw}).OK(t)
	require.WithinDuration(t, time.Now().Add(5*time.Minute), timeAt(t, vp, "step_up_expires_at"), time.Minute)
	principal, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)
	pr := principal.GetPrincipal()
	require.Equal(t, accountID, pr.GetAccountId())
	require.Equal(t, testutil.Str(signup, "user", "id"), pr.GetUserId())
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
	lp, err := e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: accountID, ProjectId: testutil.Str(p2, "id")})
	require.NoError(t, err)
	require.Equal(t, "renamed", lp.GetProject().GetName())
	_, err = e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: bob.AccountID, ProjectId: testutil.Str(p2, "id")})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.True(t, apierr.IsCode(err, apierr.NotFound))
	_, err = e.internal().LookupProject(e.operatorCtx(), &accountsv1.LookupProjectRequest{AccountId: accountID, ProjectId: "nope"})
	require.True(t, apierr.IsCode(err, apierr.InvalidArgument))

	// LookupMany: operator only; found projects and accounts, nothing for another account's
	// project, a missing one or one that is no id (one bad entry fails no other).
	manyReq := &accountsv1.LookupManyRequest{
		Projects: []*accountsv1.LookupProjectRequest{
			{AccountId: accountID, ProjectId: testutil.Str(p2, "id")},
			{AccountId: bob.AccountID, ProjectId: testutil.Str(p2, "id")},
			{AccountId: accountID, ProjectId: "prj_00000000000000000000000000"},
			{AccountId: accountID, ProjectId: "nope"},
		},
		AccountIds: []string{bob.AccountID, "acc_00000000000000000000000000", "nope"},
	}
	_, err = e.internal().LookupMany(t.Context(), manyReq)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	many, err := e.internal().LookupMany(e.operatorCtx(), manyReq)
	require.NoError(t, err)
	require.Len(t, many.GetProjects(), 1)
	require.Equal(t, "renamed", many.GetProjects()[0].GetName())
	require.Equal(t, accountID, many.GetProjects()[0].GetAccountId())
	var gotAccounts []string
	for _, a := range many.GetAccounts() {
		gotAccounts = append(gotAccounts, a.GetId())
	}
	require.ElementsMatch(t, []string{accountID, bob.AccountID}, gotAccounts)
	tooMany := &accountsv1.LookupManyRequest{AccountIds: make([]string, 1001)}
	_, err = e.internal().LookupMany(e.operatorCtx(), tooMany)
	require.True(t, apierr.IsCode(err, apierr.InvalidArgument))

	// Operator: plan and suspension.
	setPlan := "/v1/admin/accounts/" + accountID + ":setPlan"
	suspend := "/v1/admin/accounts/" + accountID + ":suspend"
	e.api.Call("POST", setPlan, "wrong-operator-token-123", map[string]any{"plan": "pro"}).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	e.api.Call("POST", setPlan, tok1, map[string]any{"plan": "pro"}).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	sp := e.api.Call("POST", setPlan, e.cfg.OperatorToken, map[string]any{"plan": "pro"}).OK(t)
	require.Equal(t, "pro", testutil.Str(sp, "account", "plan"))
	require.Equal(t, "pro", testutil.Str(e.api.Call("GET", "/v1/account", tok1, nil).OK(t), "account", "plan"))

	e.api.Call("POST", suspend, "wrong-operator-token-123", map[string]any{"reason": "abuse"}).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	su := e.api.Call("POST", suspend, e.cfg.OperatorToken, map[string]any{"reason": "abuse"}).OK(t)
	require.Equal(t, "suspended", testutil.Str(su, "account", "status"))
	// Again: no change, no error.
	e.api.Call("POST", suspend, e.cfg.OperatorToken, map[string]any{}).OK(t)

	e.api.Call("GET", "/v1/account", tok1, nil).RequireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.api.Call("GET", "/v1/projects", tok1, nil).RequireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).
		RequireError(t, http.StatusForbidden, apierr.AccountSuspended)
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.True(t, apierr.IsCode(err, apierr.AccountSuspended), "%v", err)
	// Bob is unaffected.
	e.api.Call("GET", "/v1/account", bob.Token, nil).OK(t)

	// Reinstated, the account works again: its session, signing in, the internal lookups.
	reinstate := "/v1/admin/accounts/" + accountID + ":reinstate"
	// Not by the account itself: its session is refused as suspended before anything else.
	e.api.Call("POST", reinstate, tok1, map[string]any{}).RequireError(t, http.StatusForbidden, apierr.AccountSuspended)
	e.api.Call("POST", reinstate, bob.Token, map[string]any{}).RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	re := e.api.Call("POST", reinstate, e.cfg.OperatorToken, map[string]any{"reason": "paid"}).OK(t)
	require.Equal(t, "active", testutil.Str(re, "account", "status"))
	e.api.Call("POST", reinstate, e.cfg.OperatorToken, map[string]any{}).OK(t) // again: no change, no error
	e.api.Call("GET", "/v1/account", tok1, nil).OK(t)
	e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": "alice@example.com", "password": pw}).OK(t)
	_, err = e.internal().Authenticate(t.Context(), &accountsv1.AuthenticateRequest{Token: tok1})
	require.NoError(t, err)

	e.requireNoSecretsLogged(pw, tok1, tok2, bob.Token, bob.Password, e.cfg.OperatorToken)
}

// Sign-up and login must say the same thing for an unknown e-mail and a wrong password.
func TestLoginDoesNotRevealWhichPartIsWrong(t *testing.T) {
	e := start(t)
	u := e.api.SignUp("carol")
	wrongPW := e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": "Wrong password 1"})
	wrongPW.RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	noUser := e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": "nobody@example.com", "password": "Wrong password 1"})
	noUser.RequireError(t, http.StatusUnauthorized, apierr.Unauthenticated)
	require.Equal(t, wrongPW.Message(), noUser.Message())

	e.api.Call("POST", "/v1/accounts", "", map[string]any{"email": strings.ToUpper(u.Email), "password": u.Password, "account_name": "dup"}).
		RequireError(t, http.StatusConflict, apierr.AlreadyExists)
}
