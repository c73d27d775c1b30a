package testutil_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/settings"
	"github.com/latchkey/latchkey/pkg/testutil"
)

// recorder is a testing.TB whose failures are recorded instead of failing the test, so
// the harness's own checks can be tested.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed bool
}

func (r *recorder) Helper()                   {}
func (r *recorder) Errorf(string, ...any)     { r.mu.Lock(); r.failed = true; r.mu.Unlock() }
func (r *recorder) FailNow()                  { r.mu.Lock(); r.failed = true; r.mu.Unlock(); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...); r.FailNow() }

// fails reports whether fn, given a recorder, fails it.
func fails(t *testing.T, fn func(tb testing.TB)) bool {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); fn(r) }()
	<-done
	return r.failed
}

// api answers as the REST bridge does: the envelope with X-Request-Id, or what each path
// says.
func api(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Request-Id", "req_1")
		switch r.URL.Path {
		case "/echo":
			_ = json.NewEncoder(w).Encode(map[string]any{
				"auth": r.Header.Get("Authorization"), "type": r.Header.Get("Content-Type"),
				"body": string(body), "nested": map[string]any{"value": "x"},
			})
		case "/error":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"not_found","message":"no","request_id":"req_1","documentation_url":"`+apierr.DocsBase+`not_found"}`)
		case "/wrong-id":
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"error":"not_found","message":"no","request_id":"req_2","documentation_url":"`+apierr.DocsBase+`not_found"}`)
		case "/500":
			w.WriteHeader(500)
			_, _ = io.WriteString(w, `{"error":"internal"}`)
		default:
			_, _ = io.WriteString(w, "plain text")
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestCallSendsAndDecodes(t *testing.T) {
	c := testutil.NewClient(t, api(t))
	r := c.Call("POST", "/echo", "tok", `{"raw":1}`)
	require.Equal(t, "Bearer tok", r.Str("auth"))
	require.Equal(t, "application/json", r.Str("type"))
	require.Equal(t, `{"raw":1}`, r.Str("body"), "a string body is sent verbatim")
	require.Equal(t, "x", r.Str("nested.value"))
	require.Equal(t, "x", r.Str("nested", "value"))
	require.Empty(t, c.Call("GET", "/echo", "", nil).Str("auth"), "no token, no header")
	c.Call("GET", "/error", "", nil).RequireError(t, 404, apierr.NotFound)
}

// TestCallRefusesWhatTheContractForbids: every test that calls through the harness fails
// on a 500 or an answer that is not a JSON object, and on an envelope whose request id is
// not the header's, without asserting it itself.
func TestCallRefusesWhatTheContractForbids(t *testing.T) {
	base := api(t)
	require.True(t, fails(t, func(tb testing.TB) { testutil.NewClient(tb, base).Call("GET", "/500", "", nil) }))
	require.True(t, fails(t, func(tb testing.TB) { testutil.NewClient(tb, base).Call("GET", "/text", "", nil) }))
	require.True(t, fails(t, func(tb testing.TB) {
		testutil.NewClient(tb, base).Call("GET", "/wrong-id", "", nil).RequireError(tb, 404, apierr.NotFound)
	}))
	require.True(t, fails(t, func(tb testing.TB) {
		testutil.NewClient(tb, base).Call("GET", "/error", "", nil).RequireError(tb, 400, apierr.InvalidArgument)
	}))
	require.False(t, fails(t, func(tb testing.TB) { testutil.NewClient(tb, base).Call("GET", "/echo", "", nil) }))
}

// config is a configuration as the services declare theirs.
type config struct {
	Name  string `env:"TESTUTIL_TEST_NAME" envDefault:"latchkey"`
	Count int    `env:"TESTUTIL_TEST_COUNT" envDefault:"3"`
}

func parse() (config, error) {
	var c config
	return c, settings.Parse(&c)
}

func TestEnvCases(t *testing.T) {
	testutil.RequireEnvCases(t, parse, config{Name: "latchkey", Count: 3},
		testutil.EnvCase[config]{Name: "defaults"},
		testutil.EnvCase[config]{Name: "set", Env: map[string]string{"TESTUTIL_TEST_COUNT": "7"}, Want: func(c *config) { c.Count = 7 }},
	)
	testutil.RequireBadValuesNamed(t, parse, map[string]string{"TESTUTIL_TEST_COUNT": "many"})
}
