package accounts_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/ids"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// badCase is one request that must fail with the envelope, a status and a code.
type badCase struct {
	name   string
	method string
	path   string
	token  string
	body   any
	status int
	code   apierr.Code
	// contains, if set, must appear in the message.
	contains string
}

func runBad(t *testing.T, e *env, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.api.Call(c.method, c.path, c.token, c.body)
			r.RequireError(t, c.status, c.code)
			if c.contains != "" {
				require.Contains(t, r.Message(), c.contains)
			}
		})
	}
}

func origins(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("https://o%d.example.com", i)
	}
	return out
}

func envs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("env%d", i)
	}
	return out
}

const (
	s400 = http.StatusBadRequest
	s401 = http.StatusUnauthorized
	s404 = http.StatusNotFound
	s409 = http.StatusConflict
	s413 = http.StatusRequestEntityTooLarge
)

const (
	inv    = apierr.InvalidArgument
	unauth = apierr.Unauthenticated
	nf     = apierr.NotFound
)

func TestBadInput(t *testing.T) {
	e := start(t)
	u := e.api.SignUp("dave")
	other := e.api.SignUp("erin")
	expired := e.api.SignUp("frank")
	e.expireSession(expired.Token)
	revoked := e.api.Call("POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": u.Password}).OK(t)
	revokedTok := testutil.Str(revoked, "session", "token")
	e.api.Call("DELETE", "/v1/sessions/current", revokedTok, nil).OK(t)
	p := e.createProject(u.Token, map[string]any{"name": "mine"})
	pid := testutil.Str(p, "id")
	otherP := e.createProject(other.Token, map[string]any{"name": "theirs"})
	op := e.cfg.OperatorToken
	good := map[string]any{"email": "new@example.com", "password": "Perfectly fine 1", "account_name": "x"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		m[k] = v
		return m
	}
	missingProject := ids.New(ids.Project)
	long := func(n int) string { return strings.Repeat("a", n) }

	t.Run("signup", func(t *testing.T) {
		runBad(t, e, []badCase{
			{"malformed JSON", "POST", "/v1/accounts", "", `{"email":`, s400, inv, ""},
			{"not an object", "POST", "/v1/accounts", "", `[1,2]`, s400, inv, ""},
			{"unknown field", "POST", "/v1/accounts", "", with("admin", true), s400, inv, ""},
			{"wrong type", "POST", "/v1/accounts", "", with("email", 5), s400, inv, ""},
			{"empty body", "POST", "/v1/accounts", "", "", s400, inv, "email is required"},
			{"empty email", "POST", "/v1/accounts", "", with("email", ""), s400, inv, "email is required"},
			{"no at", "POST", "/v1/accounts", "", with("email", "not-an-email"), s400, inv, "email"},
			{"display name", "POST", "/v1/accounts", "", with("email", "Eve <eve@example.com>"), s400, inv, "email"},
			{"spaces around", "POST", "/v1/accounts", "", with("email", " eve@example.com "), s400, inv, "email"},
			{"oversized email", "POST", "/v1/accounts", "", with("email", long(250)+"@x.io"), s400, inv, "254"},
			{"weak password short", "POST", "/v1/accounts", "", with("password", "Short1!"), s400, inv, "12 to 256 characters"},
			{"weak password one class", "POST", "/v1/accounts", "", with("password", "alllowercaseletters"), s400, inv, "at least two kinds"},
			{"oversized password", "POST", "/v1/accounts", "", with("password", strings.Repeat("aB", 129)), s400, inv, "12 to 256"},
			{"empty password", "POST", "/v1/accounts", "", with("password", ""), s400, inv, "too weak"},
			{"blank account name", "POST", "/v1/accounts", "", with("account_name", "   "), s400, inv, "account_name"},
			{"oversized account name", "POST", "/v1/accounts", "", with("account_name", long(101)), s400, inv, "100"},
			{"control char name", "POST", "/v1/accounts", "", with("account_name", "a\x07b"), s400, inv, "control"},
			{"duplicate email", "POST", "/v1/accounts", "", with("email", strings.ToUpper(u.Email)), s409, apierr.AlreadyExists, ""},
			{"huge body", "POST", "/v1/accounts", "", with("account_name", long(2<<20)), s413, apierr.PayloadTooLarge, ""},
		})
	})

	t.Run("login", func(t *testing.T) {
		runBad(t, e, []badCase{
			{"malformed JSON", "POST", "/v1/sessions", "", `{`, s400, inv, ""},
			{"unknown field", "POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": u.Password, "remember": true}, s400, inv, ""},
			{"wrong type", "POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": 12345}, s400, inv, ""},
			{"bad email", "POST", "/v1/sessions", "", map[string]any{"email": "nope", "password": u.Password}, s400, inv, "email"},
			{"empty password", "POST", "/v1/sessions", "", map[string]any{"email": u.Email}, s400, inv, "password is required"},
			{"oversized password", "POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": long(300)}, s400, inv, "256"},
			{"wrong password", "POST", "/v1/sessions", "", map[string]any{"email": u.Email, "password": "Wrong password 1"}, s401, unauth, ""},
			{"unknown user", "POST", "/v1/sessions", "", map[string]any{"email": "ghost@example.com", "password": "Wrong password 1"}, s401, unauth, ""},
		})
	})

	// Every session-only endpoint turns away missing, garbage, expired and revoked tokens.
	sessionCalls := []struct {
		name, method, path string
		body               any
	}{
		{"get account", "GET", "/v1/account", nil},
		{"logout", "DELETE", "/v1/sessions/current", nil},
		{"verify password", "POST", "/v1/account/verify-password", map[string]any{"password": u.Password}},
		{"list projects", "GET", "/v1/projects", nil},
		{"create project", "POST", "/v1/projects", map[string]any{"name": "x"}},
		{"get project", "GET", "/v1/projects/" + pid, nil},
	}
	t.Run("sessions", func(t *testing.T) {
		var cases []badCase
		for _, c := range sessionCalls {
			for _, tok := range []struct{ name, tok string }{
				{"missing", ""},
				{"garbage", "garbage"},
				{"malformed session", "lks_short"},
				{"unknown session", "lks_" + strings.Repeat("A", 43)},
				{"expired", expired.Token},
				{"revoked", revokedTok},
				{"oversized", "lks_" + long(5000)},
			} {
				cases = append(cases, badCase{c.name + "/" + tok.name, c.method, c.path, tok.tok, c.body, s401, unauth, ""})
			}
		}
		for _, path := range []string{"/v1/account", "/v1/sessions/current"} {
			method := "GET"
			if strings.HasSuffix(path, "current") {
				method = "DELETE"
			}
			cases = append(cases, badCase{"operator is not a user " + path, method, path, op, nil, s401, unauth, "session"})
		}
		cases = append(cases, badCase{"operator is not in an account", "GET", "/v1/projects", op, nil, s401, unauth, ""})
		runBad(t, e, cases)
	})

	t.Run("verify-password", func(t *testing.T) {
		vp := "/v1/account/verify-password"
		runBad(t, e, []badCase{
			{"malformed JSON", "POST", vp, u.Token, `{"password"`, s400, inv, ""},
			{"unknown field", "POST", vp, u.Token, map[string]any{"password": u.Password, "x": 1}, s400, inv, ""},
			{"wrong type", "POST", vp, u.Token, map[string]any{"password": []string{"a"}}, s400, inv, ""},
			{"empty", "POST", vp, u.Token, map[string]any{}, s400, inv, "password is required"},
			{"oversized", "POST", vp, u.Token, map[string]any{"password": long(257)}, s400, inv, "256"},
			{"wrong", "POST", vp, u.Token, map[string]any{"password": "Wrong password 1"}, s401, unauth, "password is wrong"},
		})
	})

	t.Run("create project", func(t *testing.T) {
		pc := func(body any) badCase {
			return badCase{method: "POST", path: "/v1/projects", token: u.Token, body: body, status: s400, code: inv}
		}
		cases := []struct {
			name     string
			body     any
			contains string
		}{
			{"malformed JSON", `{"name": "x",}`, ""},
			{"unknown field", map[string]any{"name": "x", "owner": "me"}, ""},
			{"wrong type name", map[string]any{"name": 7}, ""},
			{"wrong type environments", map[string]any{"name": "x", "environments": "dev"}, ""},
			{"missing name", map[string]any{}, "name is required"},
			{"blank name", map[string]any{"name": " \t "}, "name is required"},
			{"oversized name", map[string]any{"name": long(101)}, "100"},
			{"control char", map[string]any{"name": "a\nb"}, "control"},
			{"upper-case environment", map[string]any{"name": "x", "environments": []string{"Prod"}}, "^[a-z][a-z0-9-]{0,31}$"},
			{"environment starts with digit", map[string]any{"name": "x", "environments": []string{"1dev"}}, "environments[0]"},
			{"environment too long", map[string]any{"name": "x", "environments": []string{"a" + long(32)}}, "environments[0]"},
			{"empty environment", map[string]any{"name": "x", "environments": []string{"dev", ""}}, "environments[1]"},
			{"duplicate environment", map[string]any{"name": "x", "environments": []string{"dev", "dev"}}, "twice"},
			{"too many environments", map[string]any{"name": "x", "environments": envs(21)}, "at most 20"},
			{"too many origins", map[string]any{"name": "x", "allowed_origins": origins(51)}, "at most 50"},
			{"duplicate origins", map[string]any{"name": "x", "allowed_origins": []string{"https://A.example.com", "https://a.example.com:443"}}, "twice"},
		}
		var bad []badCase
		for _, c := range cases {
			b := pc(c.body)
			b.name, b.contains = c.name, c.contains
			bad = append(bad, b)
		}
		for _, o := range []string{
			"", "null", "example.com", "ftp://example.com", "https://", "https://example.com/",
			"https://example.com/path", "https://example.com?q=1", "https://example.com#f",
			"https://user:pw@example.com", "https://*.example.com", "https://example.com:99999",
			"https://example.com:0", "https://example.com:", "https://exa mple.com", "https://[::1",
			"https://bücher.example", "javascript:alert(1)", "https://-bad.example.com", "https://" + long(300),
		} {
			b := pc(map[string]any{"name": "x", "allowed_origins": []string{"https://ok.example.com", o}})
			b.name, b.contains = "bad origin "+clipName(o), "allowed_origins[1]"
			bad = append(bad, b)
		}
		runBad(t, e, bad)
	})

	t.Run("list projects", func(t *testing.T) {
		notProject := base64.RawURLEncoding.EncodeToString([]byte(u.AccountID))
		runBad(t, e, []badCase{
			{"page_size 1000", "GET", "/v1/projects?page_size=1000", u.Token, nil, s400, inv, "page_size"},
			{"page_size 101", "GET", "/v1/projects?page_size=101", u.Token, nil, s400, inv, "page_size"},
			{"page_size negative", "GET", "/v1/projects?page_size=-1", u.Token, nil, s400, inv, "page_size"},
			{"page_size not a number", "GET", "/v1/projects?page_size=ten", u.Token, nil, s400, inv, ""},
			{"page_size overflow", "GET", "/v1/projects?page_size=99999999999", u.Token, nil, s400, inv, ""},
			{"garbage page_token", "GET", "/v1/projects?page_token=%25%25%25", u.Token, nil, s400, inv, "page_token"},
			{"page_token of another id kind", "GET", "/v1/projects?page_token=" + notProject, u.Token, nil, s400, inv, "page_token"},
		})
		// Page tokens are bound to their account and sealed (pkg/pagetoken): a hand-made
		// one, even of a real project id, and another account's real one are refused.
		e.createProject(other.Token, map[string]any{"name": "theirs too"})
		theirs := testutil.Str(e.api.Call("GET", "/v1/projects?page_size=1", other.Token, nil).OK(t), "next_page_token")
		require.NotEmpty(t, theirs)
		handMade := base64.RawURLEncoding.EncodeToString([]byte(pid))
		runBad(t, e, []badCase{
			{"hand-made page_token", "GET", "/v1/projects?page_token=" + handMade, u.Token, nil, s400, inv, "page_token"},
			{"another account's page_token", "GET", "/v1/projects?page_token=" + theirs, u.Token, nil, s400, inv, "page_token"},
		})
		// Where it was issued, it pages on.
		page := e.api.Call("GET", "/v1/projects?page_size=1&page_token="+theirs, other.Token, nil).OK(t)
		require.Len(t, page["projects"], 1)
		require.Equal(t, testutil.Str(otherP, "id"), testutil.Str(page["projects"].([]any)[0].(map[string]any), "id"))
	})

	t.Run("get, patch, delete project", func(t *testing.T) {
		pp := "/v1/projects/" + pid
		runBad(t, e, []badCase{
			{"get bad id", "GET", "/v1/projects/not-an-id", u.Token, nil, s400, inv, "is not an id of the form prj_"},
			{"get account id", "GET", "/v1/projects/" + u.AccountID, u.Token, nil, s400, inv, "prj_"},
			{"get upper-case id", "GET", "/v1/projects/" + strings.ToUpper(pid), u.Token, nil, s400, inv, ""},
			{"get missing", "GET", "/v1/projects/" + missingProject, u.Token, nil, s404, nf, ""},
			{"get other account's", "GET", "/v1/projects/" + testutil.Str(otherP, "id"), u.Token, nil, s404, nf, ""},
			{"patch empty body", "PATCH", pp, u.Token, map[string]any{}, s400, inv, "nothing to update"},
			{"patch no body", "PATCH", pp, u.Token, nil, s400, inv, "nothing to update"},
			{"patch malformed", "PATCH", pp, u.Token, `{"name"`, s400, inv, ""},
			{"patch unknown field", "PATCH", pp, u.Token, map[string]any{"colour": "red"}, s400, inv, ""},
			{"patch wrong type", "PATCH", pp, u.Token, map[string]any{"name": 3}, s400, inv, ""},
			{"patch id", "PATCH", pp, u.Token, map[string]any{"id": missingProject}, s400, inv, "cannot be changed"},
			{"patch account_id", "PATCH", pp, u.Token, map[string]any{"account_id": other.AccountID}, s400, inv, "cannot be changed"},
			{"patch created_at", "PATCH", pp, u.Token, map[string]any{"created_at": "2020-01-01T00:00:00Z"}, s400, inv, "cannot be changed"},
			{"patch empty name", "PATCH", pp, u.Token, map[string]any{"name": ""}, s400, inv, "name"},
			{"patch oversized name", "PATCH", pp, u.Token, map[string]any{"name": long(101)}, s400, inv, "100"},
			{"patch no environments", "PATCH", pp, u.Token, map[string]any{"environments": []string{}}, s400, inv, "at least one"},
			{"patch bad environment", "PATCH", pp, u.Token, map[string]any{"environments": []string{"PRD"}}, s400, inv, "environments[0]"},
			{"patch bad origin", "PATCH", pp, u.Token, map[string]any{"allowed_origins": []string{"https://x.com/"}}, s400, inv, "allowed_origins[0]"},
			{"patch bad id", "PATCH", "/v1/projects/zzz", u.Token, map[string]any{"name": "x"}, s400, inv, ""},
			{"patch missing", "PATCH", "/v1/projects/" + missingProject, u.Token, map[string]any{"name": "x"}, s404, nf, ""},
			{"delete bad id", "DELETE", "/v1/projects/prj_", u.Token, nil, s400, inv, ""},
			{"delete missing", "DELETE", "/v1/projects/" + missingProject, u.Token, nil, s404, nf, ""},
		})
		// Nothing above changed the project.
		got := e.api.Call("GET", pp, u.Token, nil).OK(t)
		require.Equal(t, p, got["project"])
	})

	t.Run("admin", func(t *testing.T) {
		sp := "/v1/admin/accounts/" + u.AccountID + ":setPlan"
		su := "/v1/admin/accounts/" + u.AccountID + ":suspend"
		re := "/v1/admin/accounts/" + u.AccountID + ":reinstate"
		missing := "/v1/admin/accounts/" + ids.New(ids.Account)
		runBad(t, e, []badCase{
			{"no token", "POST", sp, "", map[string]any{"plan": "pro"}, s401, unauth, "operator"},
			{"session token", "POST", sp, u.Token, map[string]any{"plan": "pro"}, s401, unauth, "operator"},
			{"wrong operator token", "POST", sp, op + "x", map[string]any{"plan": "pro"}, s401, unauth, ""},
			{"unknown plan", "POST", sp, op, map[string]any{"plan": "enterprise"}, s400, inv, `"free" or "pro"`},
			{"empty plan", "POST", sp, op, map[string]any{}, s400, inv, "plan"},
			{"unknown field", "POST", sp, op, map[string]any{"plan": "pro", "seats": 3}, s400, inv, ""},
			{"wrong type", "POST", sp, op, map[string]any{"plan": true}, s400, inv, ""},
			{"bad account id", "POST", "/v1/admin/accounts/acc_nope:setPlan", op, map[string]any{"plan": "pro"}, s400, inv, "account_id"},
			{"unknown account", "POST", missing + ":setPlan", op, map[string]any{"plan": "pro"}, s404, nf, ""},
			{"suspend no token", "POST", su, "", map[string]any{}, s401, unauth, ""},
			{"suspend oversized reason", "POST", su, op, map[string]any{"reason": long(501)}, s400, inv, "500"},
			{"suspend bad id", "POST", "/v1/admin/accounts/" + pid + ":suspend", op, map[string]any{}, s400, inv, "acc_"},
			{"suspend unknown account", "POST", missing + ":suspend", op, map[string]any{}, s404, nf, ""},
			{"reinstate session token", "POST", re, u.Token, map[string]any{}, s401, unauth, "operator"},
			{"reinstate oversized reason", "POST", re, op, map[string]any{"reason": long(501)}, s400, inv, "500"},
			{"reinstate bad id", "POST", "/v1/admin/accounts/" + pid + ":reinstate", op, map[string]any{}, s400, inv, "acc_"},
			{"reinstate unknown account", "POST", missing + ":reinstate", op, map[string]any{}, s404, nf, ""},
		})
		// None of it suspended or upgraded anyone.
		a := e.api.Call("GET", "/v1/account", u.Token, nil).OK(t)
		require.Equal(t, "free", testutil.Str(a, "account", "plan"))
		require.Equal(t, "active", testutil.Str(a, "account", "status"))
	})

	t.Run("routing", func(t *testing.T) {
		runBad(t, e, []badCase{
			{"no such route", "GET", "/v1/nope", u.Token, nil, s404, nf, ""},
		})
	})
}

func clipName(s string) string {
	if len(s) > 24 {
		return s[:24]
	}
	return s
}
