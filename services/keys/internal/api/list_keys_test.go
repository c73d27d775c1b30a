package api_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
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
