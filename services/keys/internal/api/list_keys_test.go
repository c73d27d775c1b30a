package api_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

func TestListFiltersAndPagination(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("lister")
	p1, p2 := s.Project(token), s.Project(token)
	var want []string
	for i := range 5 {
		p, env := p1, "prd"
		if i%2 == 1 {
			p, env = p2, "dev"
		}
		r := s.Must(200, s.Call("POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": p, "environment": env, "name": fmt.Sprint("k", i)}))
		want = append([]string{r.Str("key.id")}, want...) // newest first
	}
	revoked := want[0]
	s.Must(200, s.Call("POST", "/v1/keys/"+revoked+":revoke", token, map[string]any{}))

	var seen []string
	pageToken := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		r := s.Must(200, s.Call("GET", "/v1/keys?page_size=2&page_token="+pageToken, token, nil))
		for _, k := range r.Get("keys").([]any) {
			seen = append(seen, k.(map[string]any)["id"].(string))
		}
		if pageToken = r.Str("next_page_token"); pageToken == "" {
			break
		}
	}
	require.Equal(t, want, seen, "pages cover every key once, newest first")

	count := func(query string) int {
		return len(s.Must(200, s.Call("GET", "/v1/keys?"+query, token, nil)).Get("keys").([]any))
	}
	require.Equal(t, 3, count("project_id="+p1))
	require.Equal(t, 2, count("project_id="+p2+"&environment=dev"))
	require.Equal(t, 0, count("project_id="+p1+"&environment=dev"))
	require.Equal(t, 1, count("status=revoked"))
	require.Equal(t, 4, count("status=active"))
	require.Equal(t, 5, count("type=ingest"))
}

// TestKeysPageTokensAreBoundAndSealed: a ListKeys page token is good only for the listing
// that issued it (pkg/pagetoken). Reused with other filters, by another account, altered
// or made by hand, it is 400 invalid_argument instead of a page from the wrong place.
func TestKeysPageTokensAreBoundAndSealed(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("pager")
	other, _ := s.signUp("pager-other")
	p1, p2 := s.Project(token), s.Project(token)
	var ids []string
	for range 3 {
		id, _ := s.IngestKey(token, p1)
		ids = append([]string{id}, ids...) // newest first
	}
	s.IngestKey(token, p2)
	s.IngestKey(other, s.Project(other))

	list := func(tok, query string) testutil.Reply {
		return s.Call("GET", "/v1/keys?page_size=1&"+query, tok, nil)
	}
	filters := "project_id=" + p1 + "&environment=prd"
	next := s.Must(200, list(token, filters)).Str("next_page_token")
	require.NotEmpty(t, next)
	page := s.Must(200, list(token, filters+"&page_token="+url.QueryEscape(next)))
	require.Equal(t, ids[1], page.Get("keys").([]any)[0].(map[string]any)["id"], "its own listing pages on")

	raw, err := base64.RawURLEncoding.DecodeString(next)
	require.NoError(t, err)
	raw[3] ^= 1
	for name, c := range map[string]struct{ token, query string }{
		"without its filters":     {token, ""},
		"another project":         {token, "project_id=" + p2 + "&environment=prd"},
		"another environment":     {token, "project_id=" + p1 + "&environment=stg"},
		"an added status filter":  {token, filters + "&status=active"},
		"an added type filter":    {token, filters + "&type=ingest"},
		"another account":         {other, filters},
		"hand-made (a key id)":    {token, filters + "&page_token=" + base64.RawURLEncoding.EncodeToString([]byte(ids[0]))},
		"altered":                 {token, filters + "&page_token=" + base64.RawURLEncoding.EncodeToString(raw)},
		"another listing's token": {token, filters + "&page_token=" + s.Must(200, s.Call("GET", "/v1/projects?page_size=1", token, nil)).Str("next_page_token")},
		"not base64":              {token, filters + "&page_token=%25%25"},
	} {
		q := c.query
		if !containsPageToken(q) {
			q += "&page_token=" + url.QueryEscape(next)
		}
		r := list(c.token, q)
		require.Equalf(t, 400, r.Status, "%s: %s", name, r.Raw)
		r.RequireError(t, 400, "invalid_argument")
	}
}

func containsPageToken(query string) bool {
	v, _ := url.ParseQuery(query)
	return v.Has("page_token")
}
