package api_test

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// serverIDs lists the ids of the servers of a listing.
func serverIDs(r map[string]any) []string {
	var out []string
	list, _ := r["servers"].([]any)
	for _, v := range list {
		out = append(out, v.(map[string]any)["id"].(string))
	}
	return out
}

// TestListServers: the account's live servers, newest first, never a key's plaintext,
// narrowed by project, name, hostname and tag, in pages whose tokens are bound to the
// filters; another account's servers never appear.
func TestListServers(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("lister")
	p1, p2 := s.Project(token), s.Project(token)
	var made []string // oldest first
	for i, c := range []struct {
		project, name, host string
		tags                []string
	}{
		{p1, "web-1", "web-1.eu", []string{"web", "eu"}},
		{p1, "web-2", "web-2.us", []string{"web", "us"}},
		{p2, "db-1", "db-1.eu", []string{"db", "eu"}},
		{p2, "web-1", "web-1.ap", nil},
	} {
		r := s.Must(200, s.Call("POST", "/v1/servers", token, map[string]any{"project_id": c.project, "name": c.name, "hostname": c.host, "tags": c.tags}))
		made = append(made, r.Str("server", "id"))
		_ = i
	}
	other, _ := s.signUp("other-lister")
	s.createServer(other, s.Project(other), "web-1")

	all := s.Must(200, s.Call("GET", "/v1/servers", token, nil))
	require.Equal(t, []string{made[3], made[2], made[1], made[0]}, serverIDs(all.OK(t)))
	require.NotContains(t, all.Raw, "api_key\":\"lk_")
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"project_id=" + p1, []string{made[1], made[0]}},
		{"name=web-1", []string{made[3], made[0]}},
		{"hostname=db-1.eu", []string{made[2]}},
		{"tag=eu", []string{made[2], made[0]}},
		{"tag=eu&project_id=" + p2, []string{made[2]}},
		{"tag=nope", nil},
	} {
		require.Equal(t, c.want, serverIDs(s.Must(200, s.Call("GET", "/v1/servers?"+c.query, token, nil)).OK(t)), c.query)
	}

	// Pages of one, with tokens bound to the filters.
	var paged []string
	page := s.Must(200, s.Call("GET", "/v1/servers?page_size=1&tag=web", token, nil))
	for {
		paged = append(paged, serverIDs(page.OK(t))...)
		next := page.Str("next_page_token")
		if next == "" {
			break
		}
		s.Call("GET", "/v1/servers?page_size=1&tag=eu&page_token="+url.QueryEscape(next), token, nil).RequireError(t, 400, "invalid_argument")
		s.Call("GET", "/v1/servers?page_size=1&tag=web&page_token="+url.QueryEscape(next), other, nil).RequireError(t, 400, "invalid_argument")
		page = s.Must(200, s.Call("GET", "/v1/servers?page_size=1&tag=web&page_token="+url.QueryEscape(next), token, nil))
	}
	require.Equal(t, []string{made[1], made[0]}, paged)

	// A deleted server is listed no more.
	s.Must(200, s.Call("DELETE", "/v1/servers/"+made[0], token, nil))
	require.Equal(t, []string{made[1]}, serverIDs(s.Must(200, s.Call("GET", "/v1/servers?project_id="+p1, token, nil)).OK(t)))
}

// TestListServersBadInput: bad filters and page parameters are 400 in the envelope.
func TestListServersBadInput(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("bad-lister")
	for _, q := range []string{
		"project_id=prj_nope", "project_id=lk_srv_abc", "page_size=-1", "page_size=101", "page_size=abc",
		"page_token=garbage", "page_token=" + url.QueryEscape("AAAA"), "name=" + url.QueryEscape("a\x01"),
		"hostname=" + url.QueryEscape(string(make([]byte, 254))), "tag=" + url.QueryEscape("t\x7f"), "unknown=1",
	} {
		s.Call("GET", "/v1/servers?"+q, token, nil).RequireError(t, 400, "invalid_argument", q)
	}
}
