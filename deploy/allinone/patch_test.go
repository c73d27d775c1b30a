package allinone

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/testutil"
)

// TestPatchClearsMapsAndLists: on a project, each form of clearing a list stores it empty
// (200, and a later GET agrees), never a 500 (a key's metadata: keys' TestPatchClearsKeyMetadata);
// on every service, a body with anything after its JSON value is 400.
func TestPatchClearsMapsAndLists(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("patch")
	project := s.Project(token)
	keyID, _ := s.IngestKey(token, project)
	// ok is s.must for subtests: it fails the subtest, not the whole test.
	ok := func(t *testing.T, r testutil.Reply) testutil.Reply {
		t.Helper()
		require.Equalf(t, 200, r.Status, "body: %s", r.Raw)
		return r
	}

	t.Run("project allowed_origins", func(t *testing.T) {
		for _, f := range testutil.ClearForms("allowed_origins", "[]") {
			t.Run(f.Name, func(t *testing.T) {
				set := ok(t, s.Call("PATCH", "/v1/projects/"+project, token, map[string]any{"allowed_origins": []string{"https://app.example.com"}}))
				require.Equal(t, []any{"https://app.example.com"}, set.Get("project.allowed_origins"))
				r := ok(t, s.Call("PATCH", "/v1/projects/"+project+f.Query, token, f.Body))
				require.Equal(t, []any{}, r.Get("project.allowed_origins"), r.Raw)
				require.Equal(t, "web-app", r.Str("project.name"), "the mask limits the change")
				got := ok(t, s.Call("GET", "/v1/projects/"+project, token, nil))
				require.Equal(t, []any{}, got.Get("project.allowed_origins"), got.Raw)
			})
		}
	})

	// A project needs an environment, so clearing them is a clear 400, in every form.
	t.Run("project environments", func(t *testing.T) {
		for _, f := range testutil.ClearForms("environments", "[]") {
			t.Run(f.Name, func(t *testing.T) {
				s.Call("PATCH", "/v1/projects/"+project+f.Query, token, f.Body).RequireError(t, 400, "invalid_argument")
			})
		}
	})

	t.Run("trailing garbage", func(t *testing.T) {
		for _, c := range []struct{ method, path, body string }{
			{"PATCH", "/v1/keys/" + keyID, `{}x`},
			{"PATCH", "/v1/keys/" + keyID, `{"name":"a"}x`},
			{"PATCH", "/v1/keys/" + keyID, `{"name":"a"}{"name":"b"}`},
			{"PATCH", "/v1/projects/" + project, `{}x`},
			{"PATCH", "/v1/projects/" + project, `{"name":"a"} 1`},
			{"POST", "/v1/projects", `{"name":"x"}x`},
			{"POST", "/v1/keys:verify", `{"key":"x"}]`},
		} {
			t.Run(c.method+" "+c.body, func(t *testing.T) {
				s.Call(c.method, c.path, token, c.body).RequireError(t, 400, "invalid_argument")
			})
		}
		// White space after the value is still one value.
		ok(t, s.Call("PATCH", "/v1/projects/"+project, token, "{\"name\":\"web-app\"}\n\t "))
	})
}
