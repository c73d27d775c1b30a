package loadgen

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

func TestRunAgainstBare(t *testing.T) {
	url, stop, err := Bare()
	require.NoError(t, err)
	t.Cleanup(stop)
	require.True(t, strings.HasPrefix(url, "http://127.0.0.1:"), url)

	res, err := Run(t.Context(), Config{
		URL:         url,
		Keys:        []string{"lk_test_key"},
		Body:        TracesBody(1024),
		Concurrency: 4,
		Duration:    300 * time.Millisecond,
	})
	require.NoError(t, err)
	t.Log(res)
	require.Positive(t, res.Requests)
	require.Zero(t, res.Errors)
	require.Equal(t, map[int]int64{http.StatusOK: res.Requests}, res.ByStatus)
	require.Positive(t, res.RPS)
	require.GreaterOrEqual(t, res.Elapsed, 300*time.Millisecond)
	require.Positive(t, res.P50)
	require.LessOrEqual(t, res.P50, res.P99)
}

func TestRunSendsRequest(t *testing.T) {
	body := TracesBody(512)
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err := io.ReadAll(r.Body)
		if err != nil || string(got) != string(body) ||
			r.Method != http.MethodPost ||
			r.Header.Get("Authorization") != "Bearer lk_abc" ||
			r.Header.Get("Content-Type") != DefaultContentType ||
			r.Header.Get("Accept-Encoding") != "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		seen.Add(1)
	}))
	t.Cleanup(srv.Close)

	res, err := Run(t.Context(), Config{URL: srv.URL + "/v1/traces", Keys: []string{"lk_abc"}, Body: body, Concurrency: 2, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, map[int]int64{http.StatusOK: res.Requests}, res.ByStatus)
	require.Equal(t, res.Requests, seen.Load())
}

// Workers take the keys in turn.
func TestRunSpreadsKeys(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Header.Get("Authorization")]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)

	_, err := Run(t.Context(), Config{URL: srv.URL, Keys: []string{"k1", "k2", "k3"}, Concurrency: 6, Duration: 50 * time.Millisecond})
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, 3, "%v", seen)
	for _, k := range []string{"k1", "k2", "k3"} {
		require.Positive(t, seen["Bearer "+k], "%v", seen)
	}
}

func TestRunWithoutKeySendsNoAuthorization(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Authorization"]; ok {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)

	res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 1, Duration: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, map[int]int64{http.StatusOK: res.Requests}, res.ByStatus)
}

func TestRunCounts401(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"code":16,"message":"invalid key"}`))
	}))
	t.Cleanup(srv.Close)

	res, err := Run(t.Context(), Config{
		URL:         srv.URL + "/v1/traces",
		Keys:        []string{"lk_bad"},
		Body:        TracesBody(1024),
		Concurrency: 4,
		Duration:    100 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Positive(t, res.Requests)
	require.Zero(t, res.Errors)
	require.Equal(t, map[int]int64{http.StatusUnauthorized: res.Requests}, res.ByStatus)
}

func TestRunCountsTransportErrors(t *testing.T) {
	url, stop, err := Bare()
	require.NoError(t, err)
	stop() // nothing listens there any more

	res, err := Run(t.Context(), Config{URL: url, Concurrency: 2, Duration: 20 * time.Millisecond})
	require.Error(t, err)
	require.Zero(t, res.Requests)
	require.Positive(t, res.Errors)
	require.Empty(t, res.ByStatus)
}

func TestRunStopsWithContext(t *testing.T) {
	url, stop, err := Bare()
	require.NoError(t, err)
	t.Cleanup(stop)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	res, err := Run(ctx, Config{URL: url, Concurrency: 2, Duration: time.Hour})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(begin), 10*time.Second)
	require.Zero(t, res.Errors)
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{URL: "127.0.0.1:4318"},
		{URL: "ftp://127.0.0.1/"},
		{URL: "http://127.0.0.1:4318", Concurrency: -1},
		{URL: "http://127.0.0.1:4318", Duration: -time.Second},
	} {
		require.Error(t, c.Validate(), "%+v", c)
		_, err := Run(t.Context(), c)
		require.Error(t, err, "%+v", c)
	}
	require.NoError(t, Config{URL: "http://127.0.0.1:4318/v1/traces"}.Validate())
}

func TestTracesBody(t *testing.T) {
	for _, n := range []int{400, 512, 1000, 1024, 1500, 4096, 64 << 10} {
		body := TracesBody(n)
		require.InEpsilon(t, n, len(body), 0.10, "TracesBody(%d) is %d bytes", n, len(body))

		req := ptraceotlp.NewExportRequest()
		require.NoError(t, req.UnmarshalProto(body))
		td := req.Traces()
		require.Equal(t, 1, td.ResourceSpans().Len())
		require.Equal(t, max(1, n/bytesPerSpan), td.SpanCount())
		name, ok := td.ResourceSpans().At(0).Resource().Attributes().Get("service.name")
		require.True(t, ok)
		require.Equal(t, "loadgen", name.Str())

		require.Equal(t, body, TracesBody(n), "TracesBody(%d) is not deterministic", n)
	}
}

func TestTracesBodyTiny(t *testing.T) {
	body := TracesBody(0)
	require.NotEmpty(t, body)
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(body))
	require.Equal(t, 1, req.Traces().SpanCount())
}

func TestPercentile(t *testing.T) {
	require.Zero(t, percentile(nil, 0.5))
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	require.Equal(t, time.Duration(50), percentile(s, 0.50))
	require.Equal(t, time.Duration(99), percentile(s, 0.99))
	require.Equal(t, time.Duration(7), percentile([]time.Duration{7}, 0.99))
}

func TestResultString(t *testing.T) {
	r := Result{Requests: 3, ByStatus: map[int]int64{401: 1, 200: 2}, RPS: 1.5, Elapsed: 2 * time.Second}
	require.Equal(t, "rps=2 p50=0s p99=0s requests=3 errors=0 elapsed=2s status=200:2,401:1", r.String())
}
