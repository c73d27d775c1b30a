package sender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/latchkey/latchkey/pkg/keyformat"
)

// mintServer is a minimal real HTTP server answering POST /v1/anonymous-keys as the keys
// service does, counting the keys it mints: the peer whose calls the tests count. The
// REST contract itself is tested against the running suite in deploy/allinone.
type mintServer struct {
	*httptest.Server
	mints atomic.Int64
	// calls counts every POST /v1/anonymous-keys, answered or refused.
	calls atomic.Int64
	reg   *keyformat.Registry
	// answer, when set, may replace the answer (status and body): it reports whether it
	// answered, else the server mints.
	answer atomic.Pointer[func(w http.ResponseWriter, call int64) bool]
}

// answerWith makes fn answer every mint; nil restores the default.
func (m *mintServer) answerWith(fn func(w http.ResponseWriter)) {
	if fn == nil {
		m.answer.Store(nil)
		return
	}
	f := func(w http.ResponseWriter, _ int64) bool { fn(w); return true }
	m.answer.Store(&f)
}

// refuseFirst answers the next calls with the statuses given ("429" or "503") and
// Retry-After values ("" for none), then mints again.
func (m *mintServer) refuseFirst(answers ...[2]string) {
	first := m.calls.Load() + 1
	f := func(w http.ResponseWriter, call int64) bool {
		n := call - first
		if n < 0 || n >= int64(len(answers)) {
			return false
		}
		if ra := answers[n][1]; ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		if answers[n][0] == "429" {
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":"rate_limited","message":"too many anonymous keys from this address","tier":"ip"}`))
			return true
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":"unavailable","message":"try again"}`))
		return true
	}
	m.answer.Store(&f)
}

func newMintServer(t testing.TB, reg *keyformat.Registry) *mintServer {
	t.Helper()
	m := &mintServer{reg: reg}
	m.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/anonymous-keys" {
			http.NotFound(w, r)
			return
		}
		call := m.calls.Add(1)
		if fn := m.answer.Load(); fn != nil && (*fn)(w, call) {
			return
		}
		a, _ := m.reg.Anonymous()
		secret, err := m.reg.Generate(a.Name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n := m.mints.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"key":    map[string]any{"id": fmt.Sprintf("key_%026d", n), "type": a.Name},
			"secret": secret,
		})
	}))
	t.Cleanup(m.Close)
	return m
}

// logBuffer is a slog text log the tests read; safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many lines hold s.
func (b *logBuffer) count(s string) int {
	n := 0
	for line := range strings.SplitSeq(b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

func generate(t testing.TB, reg *keyformat.Registry, typ string) string {
	t.Helper()
	k, err := reg.Generate(typ)
	require.NoError(t, err)
	return k
}

func displayPrefix(t testing.TB, reg *keyformat.Registry, key string) string {
	t.Helper()
	k, err := reg.Parse(key)
	require.NoError(t, err)
	return keyformat.DisplayPrefix(k)
}

// clearEnv unsets every variable Start reads, for the test, and gives the mint locks a
// cache directory of the test's own (on systems where os.UserCacheDir reads
// XDG_CACHE_HOME), so that the user's holds no lock of a test's project.
func clearEnv(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv(EnvProfile, "")
	for _, name := range keyformat.ProfileNames() {
		r, err := keyformat.LoadProfile(name)
		require.NoError(t, err)
		t.Setenv(r.SDK().APIKeyEnv, "")
	}
	for _, v := range []string{EnvEndpoint, EnvProtocol, EnvAPIURL, "OTEL_EXPORTER_OTLP_HEADERS"} {
		t.Setenv(v, "")
	}
}

// gateway is a minimal real OTLP/HTTP peer: it answers every export with answer (200 and
// an empty body unless set) and keeps the Authorization header of each.
type gateway struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
	answers func(w http.ResponseWriter, r *http.Request)
}

func newGateway(t testing.TB) *gateway {
	t.Helper()
	g := &gateway{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.headers = append(g.headers, r.Header.Clone())
		answer := g.answers
		g.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) answer(fn func(w http.ResponseWriter, r *http.Request)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.answers = fn
}

// received returns the values of a header in every request so far, one list per request.
func (g *gateway) received(name string) [][]string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out [][]string
	for _, h := range g.headers {
		out = append(out, h.Values(name))
	}
	return out
}
