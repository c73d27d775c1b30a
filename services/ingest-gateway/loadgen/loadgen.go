// Package loadgen drives the gateway throughput benchmark: authenticated OTLP/HTTP
// requests of a chosen size from a fixed number of keep-alive workers for a fixed time,
// measured side by side with Bare, a net/http server that does nothing, so that the
// gateway's cost is read against what net/http alone costs on the same machine.
//
// It sends traffic only to the URL it is given; the benchmark points it at loopback.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultContentType = "application/x-protobuf"
	DefaultConcurrency = 16
	DefaultDuration    = 10 * time.Second
	// requestTimeout bounds one request, so a server that hangs cannot hold Run past
	// Duration by more than this.
	requestTimeout = 30 * time.Second
)

// Config is one load run.
type Config struct {
	// URL is where every request goes, e.g. http://127.0.0.1:4318/v1/traces. Required;
	// http or https.
	URL string
	// Keys are sent as `Authorization: Bearer <key>`, worker i sending Keys[i % len(Keys)]:
	// several keys spread the load as many clients of a platform do. None sends no
	// Authorization header.
	Keys []string
	// Body is the request body, sent whole with every request; see TracesBody.
	Body []byte
	// ContentType is the Content-Type header; default DefaultContentType.
	ContentType string
	// Concurrency is the number of workers, each sending one request at a time over
	// keep-alive connections; default DefaultConcurrency.
	Concurrency int
	// Duration is how long workers start new requests; requests in flight when it ends
	// finish and count. Default DefaultDuration.
	Duration time.Duration
}

// Validate reports a Config that Run cannot use. Zero values are fine: they take defaults.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("loadgen: url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadgen: url %q: want http(s)://host[:port]/path", c.URL)
	}
	if c.Concurrency < 0 {
		return fmt.Errorf("loadgen: concurrency %d is negative", c.Concurrency)
	}
	if c.Duration < 0 {
		return fmt.Errorf("loadgen: duration %v is negative", c.Duration)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.ContentType == "" {
		c.ContentType = DefaultContentType
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	return c
}

// Result is what one run measured.
type Result struct {
	// Requests counts requests that got a response, whatever its status.
	Requests int64
	// Errors counts requests that got no response (refused connection, reset, timeout).
	Errors int64
	// ByStatus counts responses by HTTP status code.
	ByStatus map[int]int64
	// Elapsed runs from the first request to the last response.
	Elapsed time.Duration
	// RPS is Requests / Elapsed.
	RPS float64
	// P50 and P99 are response latencies, from sending the request to having read the
	// whole response body.
	P50, P99 time.Duration
}

// String is the one-line summary the loadgen command prints.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rps=%.0f p50=%v p99=%v requests=%d errors=%d elapsed=%v status=",
		r.RPS, r.P50, r.P99, r.Requests, r.Errors, r.Elapsed.Round(time.Millisecond))
	codes := slices.Sorted(maps.Keys(r.ByStatus))
	if len(codes) == 0 {
		b.WriteString("none")
	}
	for i, code := range codes {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d:%d", code, r.ByStatus[code])
	}
	return b.String()
}

// worker keeps its own tallies so that workers never share a lock or a cache line on the
// hot path; Run merges them at the end.
type worker struct {
	latencies []time.Duration
	byStatus  map[int]int64
	errors    int64
	lastErr   error
}

// Run sends cfg.Body to cfg.URL from cfg.Concurrency workers for cfg.Duration and returns
// what it measured. When ctx ends first it returns what was measured so far with
// ctx's error.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()

	client, closeIdle := newClient(cfg.Concurrency)
	defer closeIdle()

	workers := make([]worker, cfg.Concurrency)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		// Presized so appends rarely grow the slice mid-run.
		w.latencies = make([]time.Duration, 0, 4096)
		w.byStatus = make(map[int]int64, 4)
		header := http.Header{"Content-Type": {cfg.ContentType}}
		if len(cfg.Keys) > 0 {
			header.Set("Authorization", "Bearer "+cfg.Keys[i%len(cfg.Keys)])
		}
		wg.Go(func() { w.run(ctx, client, cfg, header, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := Result{ByStatus: make(map[int]int64), Elapsed: elapsed}
	var all []time.Duration
	var lastErr error
	for i := range workers {
		w := &workers[i]
		all = append(all, w.latencies...)
		for code, n := range w.byStatus {
			res.ByStatus[code] += n
		}
		res.Errors += w.errors
		if w.lastErr != nil {
			lastErr = w.lastErr
		}
	}
	res.Requests = int64(len(all))
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	slices.Sort(all)
	res.P50 = percentile(all, 0.50)
	res.P99 = percentile(all, 0.99)

	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Requests == 0 && res.Errors > 0 {
		// Nothing answered at all: most likely the wrong URL; say why.
		return res, fmt.Errorf("loadgen: no request got a response: %w", lastErr)
	}
	return res, nil
}

func (w *worker) run(ctx context.Context, client *http.Client, cfg Config, header http.Header, deadline time.Time) {
	for ctx.Err() == nil && time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(cfg.Body))
		if err != nil { // cannot happen after Validate, but never loop on it
			w.errors++
			w.lastErr = err
			return
		}
		// Each request gets its own copy: the client may add to a request's header.
		req.Header = header.Clone()

		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return // cut short by the caller, not a failure of the server
			}
			w.errors++
			w.lastErr = err
			continue
		}
		// Drain before closing, or the connection is not reused and the run measures
		// connection set-up instead of requests.
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil && ctx.Err() == nil {
			w.errors++
			w.lastErr = err
			continue
		}
		w.latencies = append(w.latencies, time.Since(t0))
		w.byStatus[resp.StatusCode]++
	}
}

// newClient returns one client for all workers, its pool sized so that every worker keeps
// a warm connection, and a func that closes the pool.
func newClient(concurrency int) (*http.Client, func()) {
	tr := &http.Transport{
		// No proxy from the environment: the benchmark measures the server, not a proxy.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		IdleConnTimeout:     90 * time.Second,
		// Bodies are sent as they are; transparent gzip would add work on both sides.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}, tr.CloseIdleConnections
}

// percentile returns the nearest-rank p-quantile of sorted latencies, 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999999) - 1 // ceil(n*p) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Bare starts a net/http server on 127.0.0.1:0 whose handler reads and discards the body
// and answers 200 with no body: the baseline against which the gateway is read. The URL
// it returns ends in /v1/traces (the handler answers on any path) so that it stands in
// for the gateway's. stop shuts the server down; calling it again does nothing.
func Bare() (traceURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("loadgen: bare: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Serve returns http.ErrServerClosed once stop runs; before that, only a broken
		// listener ends it, and the run then shows the errors.
		_ = srv.Serve(ln)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if srv.Shutdown(ctx) != nil {
				_ = srv.Close()
			}
			<-done
		})
	}
	return "http://" + ln.Addr().String() + "/v1/traces", stop, nil
}
