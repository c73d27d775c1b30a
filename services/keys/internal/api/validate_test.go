package api_test

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/pkg/apierr"
)

// TestKeysBadInput: every malformed request gets the error envelope with the right code,
// never a 500.
func TestKeysBadInput(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("bad")
	project := s.Project(token)
	id, _ := s.IngestKey(token, project)
	long := strings.Repeat("x", 5000)
	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      apierr.Code
	}{
		{"no credentials", "POST", "/v1/keys", "", map[string]any{"type": "ingest"}, 401, "unauthenticated"},
		{"garbage bearer", "GET", "/v1/keys", "not-a-token", nil, 401, "unauthenticated"},
		{"unknown session", "GET", "/v1/keys", "lks_" + strings.Repeat("a", 43), nil, 401, "unauthenticated"},
		{"forged key", "GET", "/v1/keys", "lk_acct_" + strings.Repeat("a", 49), nil, 401, "unauthenticated"},
		{"malformed json", "POST", "/v1/keys", token, `{"type": "ingest",`, 400, "invalid_argument"},
		{"not json", "POST", "/v1/keys", token, `hello`, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "colour": "red"}, 400, "invalid_argument"},
		{"wrong type", "POST", "/v1/keys", token, map[string]any{"type": 7}, 400, "invalid_argument"},
		{"capabilities not a list", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "capabilities": "ingest"}, 400, "invalid_argument"},
		{"missing type", "POST", "/v1/keys", token, map[string]any{"project_id": project}, 400, "invalid_argument"},
		{"unknown key type", "POST", "/v1/keys", token, map[string]any{"type": "platinum", "project_id": project, "environment": "prd"}, 400, "invalid_argument"},
		{"missing project", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "environment": "prd"}, 400, "invalid_argument"},
		{"bad project id", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": "../etc", "environment": "prd"}, 400, "invalid_argument"},
		{"unknown project", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": "prj_01jq0000000000000000000000", "environment": "prd"}, 404, "not_found"},
		{"missing environment", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project}, 400, "invalid_argument"},
		{"unknown environment", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "qa"}, 400, "invalid_argument"},
		{"NUL in name", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "name": "a\x00b"}, 400, "invalid_argument"},
		{"NUL in metadata", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "metadata": map[string]string{"k": "\x00"}}, 400, "invalid_argument"},
		{"NUL in environment filter", "GET", "/v1/keys?environment=%00", token, nil, 400, "invalid_argument"},
		{"NUL in revoke reason", "POST", "/v1/keys/" + id + ":revoke", token, map[string]any{"reason": "\x00"}, 400, "invalid_argument"},
		{"oversized name", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "name": long}, 400, "invalid_argument"},
		{"bad expires_at", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "expires_at": "tomorrow"}, 400, "invalid_argument"},
		{"capability outside the type", "POST", "/v1/keys", token, map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "capabilities": []string{"keys:write"}}, 400, "invalid_argument"},
		{"account key with a project", "POST", "/v1/keys", token, map[string]any{"type": "account", "project_id": project}, 403, "plan_required"},
		{"body over the limit", "POST", "/v1/keys", token, `{"name":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "payload_too_large"},
		{"bad key id", "GET", "/v1/keys/nope", token, nil, 400, "invalid_argument"},
		{"unknown key id", "GET", "/v1/keys/key_01jq0000000000000000000000", token, nil, 404, "not_found"},
		{"bad page size", "GET", "/v1/keys?page_size=1000", token, nil, 400, "invalid_argument"},
		{"negative page size", "GET", "/v1/keys?page_size=-1", token, nil, 400, "invalid_argument"},
		{"page size not a number", "GET", "/v1/keys?page_size=many", token, nil, 400, "invalid_argument"},
		{"forged page token", "GET", "/v1/keys?page_token=zzz", token, nil, 400, "invalid_argument"},
		{"bad status filter", "GET", "/v1/keys?status=sleeping", token, nil, 400, "invalid_argument"},
		{"bad type filter", "GET", "/v1/keys?type=platinum", token, nil, 400, "invalid_argument"},
		{"misspelt filter", "GET", "/v1/keys?projectid=" + project, token, nil, 400, "invalid_argument"},
		{"unknown patch field", "PATCH", "/v1/keys/" + id, token, map[string]any{"status": "active"}, 400, "invalid_argument"},
		{"rotate bad grace type", "POST", "/v1/keys/" + id + ":rotate", token, map[string]any{"grace_period_seconds": "soon"}, 400, "invalid_argument"},
		{"rotate huge grace", "POST", "/v1/keys/" + id + ":rotate", token, map[string]any{"grace_period_seconds": 1 << 40}, 400, "invalid_argument"},
		{"revoke oversized reason", "POST", "/v1/keys/" + id + ":revoke", token, map[string]any{"reason": long}, 400, "invalid_argument"},
		// A NUL is no text at all, so not a question about a key (TestEveryRouteRefusesBadText).
		{"NUL in a presented key", "POST", "/v1/keys:verify", token, map[string]any{"key": "lk_ing_\x00"}, 400, "invalid_argument"},
		{"verify without auth", "POST", "/v1/keys:verify", "", map[string]any{"key": "x"}, 401, "unauthenticated"},
		{"unknown route", "GET", "/v1/nothing-here", token, nil, 404, "not_found"},
		{"wrong method", "DELETE", "/v1/keys:verify", token, nil, 405, "method_not_allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.Call(c.method, c.path, c.token, c.body).RequireError(t, c.status, c.code)
		})
	}

	// Malformed keys are a verdict, not an error: the caller asked a question.
	for _, k := range []string{"", "lk_ing_", "lk_ing_short", "nope", strings.Repeat("A", 300), "lk_ing_" + strings.Repeat("0", 49), "\xff\xfe"} {
		r := s.Verify(token, k)
		if r.Str("code") != "malformed" || r.Get("valid") != false {
			t.Errorf("verify(%q) = %s, want malformed", k, r.Raw)
		}
	}
}
