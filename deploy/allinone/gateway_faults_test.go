package allinone

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
)

// extraGateway starts one more gateway beside the suite's, with its own NATS connection,
// and returns its ingest URL.
func (s *suite) extraGateway(id string, setup ...func(*gateway.Gateway)) (string, *gateway.Gateway) {
	s.t.Helper()
	cfg := s.gatewayCfg
	cfg.ID, cfg.HTTPAddr, cfg.GRPCAddr = id, "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	gw, err := gateway.New(ctx, cfg, zap.NewNop())
	require.NoError(s.t, err)
	for _, f := range setup {
		f(gw)
	}
	addrs := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() {
		cfg := server.RunConfig{Logger: zap.NewNop(), Grace: time.Second, OnListening: func(a map[string]string) { addrs <- a }}
		done <- server.Run(ctx, cfg, gw.Unit)
	}()
	s.t.Cleanup(func() { cancel(); <-done })
	url := "http://" + (<-addrs)["ingest-gateway http"]
	testutil.Eventually(s.t, 10*time.Second, gw.Unit.Ready, "gateway "+id+" to be ready")
	return url, gw
}

// waitForLiveGateways revokes throwaway keys until the receipt counts n live gateways
// (gateways announce themselves once a second).
func (s *suite) waitForLiveGateways(token, project string, n int) {
	s.t.Helper()
	testutil.Eventually(s.t, 10*time.Second, func() bool {
		id, _ := s.IngestKey(token, project)
		r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"wait_for_gateways": true, "wait_timeout_ms": 2000}))
		return r.Get("receipt.gateways_live") == float64(n) && r.Get("receipt.complete") == true
	}, "every gateway to be live")
}

type attempt struct {
	start  time.Time
	status int
}

// attempts is what one sender did, safe to read while it goes on.
type attempts struct {
	mu   sync.Mutex
	list []attempt
}

func (a *attempts) add(x attempt) { a.mu.Lock(); a.list = append(a.list, x); a.mu.Unlock() }

func (a *attempts) snapshot() []attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attempt(nil), a.list...)
}

// startedAfter counts attempts begun after t.
func (a *attempts) startedAfter(t time.Time) int {
	n := 0
	for _, x := range a.snapshot() {
		if x.start.After(t) {
			n++
		}
	}
	return n
}

// sender posts traces with key to url until stop is closed, recording every attempt.
func sender(url, key string, body []byte, stop <-chan struct{}, out *attempts, wg *sync.WaitGroup) {
	defer wg.Done()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-stop:
			return
		default:
		}
		req, _ := http.NewRequest("POST", url+"/v1/traces", bytesReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+key)
		start := time.Now()
		resp, err := client.Do(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
			_ = resp.Body.Close()
		}
		out.add(attempt{start, status})
	}
}

// TestRevokeWhileSending: clients send continuously through three gateways; once the
// revoke call returns (having waited for the receipt), no gateway accepts the key again.
func TestRevokeWhileSending(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("revoke-race")
	project := s.Project(token)
	urls := []string{s.ingest}
	for _, id := range []string{"gw-b", "gw-c"} {
		u, _ := s.extraGateway(id)
		urls = append(urls, u)
	}
	s.waitForLiveGateways(token, project, len(urls))

	id, key := s.IngestKey(token, project)
	body := tracesBody(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sent := make([]*attempts, len(urls))
	for i, u := range urls {
		sent[i] = &attempts{}
		wg.Add(1)
		go sender(u, key, body, stop, sent[i], &wg)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, a := range sent {
			if a.startedAfter(time.Time{}) < 20 {
				return false
			}
		}
		return true
	}, "every sender to be under way")

	r := s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"reason": "race", "wait_for_gateways": true}))
	returned := time.Now()
	require.Equal(t, float64(len(urls)), r.Get("receipt.gateways_live"), r.Raw)
	require.Equal(t, float64(len(urls)), r.Get("receipt.gateways_applied"), r.Raw)
	require.Equal(t, true, r.Get("receipt.complete"), r.Raw)
	t.Logf("receipt after %v ms", r.Get("receipt.waited_ms"))

	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, a := range sent {
			if a.startedAfter(returned) < 5 {
				return false
			}
		}
		return true
	}, "attempts after the revoke returned")
	close(stop)
	wg.Wait()
	for i, a := range sent {
		accepted, refusedAfter := 0, 0
		for _, a := range a.snapshot() {
			require.NotEqual(t, 0, a.status, "gateway %d: transport error", i)
			if a.start.After(returned) {
				require.Equal(t, http.StatusUnauthorized, a.status, "gateway %d accepted the key after the revoke returned", i)
				refusedAfter++
			} else if a.status == http.StatusOK {
				accepted++
			}
		}
		require.Positive(t, accepted, "gateway %d accepted the key before", i)
		require.Positive(t, refusedAfter, "gateway %d refused it after", i)
	}
}

// TestNATSOutage: with NATS gone, cached keys keep verifying until the staleness bound,
// ingest answers 503 (never 500), a revoked key is refused within the bound, and once NATS
// is back the gateway flushes, catches up and every payload answered 200 is in the stream.
func TestNATSOutage(t *testing.T) {
	srv := testutil.StartNATS(t)
	const bound = time.Second
	s := startSuite(t, withNATS(srv.URL), withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.MaxStaleness = bound
	}))
	token, account := s.signUp("outage")
	project := s.Project(token)
	id2, k2 := s.IngestKey(token, project)
	_, k1 := s.IngestKey(token, project)
	urlB, gwB := s.extraGateway("gw-b")
	body := string(tracesBody(t))
	var accepted []string // request ids answered 200
	postTo := func(url, key string) int {
		r := s.Send("POST", url+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
		require.NotEqual(t, 500, r.Status, r.Raw)
		if r.Status == 200 {
			accepted = append(accepted, r.Header.Get("X-Request-Id"))
		}
		return r.Status
	}
	post := func(key string) int { return postTo(s.ingest, key) }
	require.Equal(t, 200, post(k1))
	require.Equal(t, 200, post(k2))

	srv.Stop()
	testutil.Eventually(t, 5*time.Second, func() bool { return post(k1) == 503 }, "ingest to answer 503 without NATS")
	r := s.Send("POST", s.ingest+"/v1/traces", k1, body, "Content-Type", "application/x-protobuf")
	r.RequireError(t, 503, "unavailable")
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	health, err := http.Get(s.ingest + "/healthz")
	require.NoError(t, err)
	health.Body.Close()
	require.Equal(t, 503, health.StatusCode, "not ready while unsubscribed")

	// The revocation commits; its event cannot reach the gateways. The staleness bound
	// must: gateway B caches k2 afresh (a known moment), then the key is revoked.
	gwB.Cache.Flush()
	cachedAt := time.Now()
	require.Equal(t, 503, postTo(urlB, k2), "verified afresh, then refused for want of NATS")
	rr := s.Must(200, s.Call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "outage", "wait_for_gateways": true, "wait_timeout_ms": 200}))
	require.Equal(t, false, rr.Get("receipt.complete"), "without NATS nothing can confirm the revocation: %s", rr.Raw)
	require.Equal(t, 503, postTo(urlB, k2), "a cached key keeps verifying until the bound")
	testutil.Eventually(t, bound+3*time.Second, func() bool { return postTo(urlB, k2) == 401 }, "the revoked key to be refused")
	took := time.Since(cachedAt)
	t.Logf("revoked key refused %v after it was cached, with NATS down (bound %v)", took, bound)
	require.GreaterOrEqual(t, took, bound)
	require.LessOrEqual(t, took, bound+750*time.Millisecond, "refused at the bound, not long after (slack for a loaded CI machine)")
	testutil.Eventually(t, bound+time.Second, func() bool { return post(k2) == 401 }, "the suite's gateway to refuse it too")

	srv.Start()
	testutil.Eventually(t, 15*time.Second, func() bool { return post(k1) == 200 }, "ingest to recover")
	require.Equal(t, 401, post(k2))
	testutil.Eventually(t, 10*time.Second, func() bool {
		resp, err := http.Get(s.ingest + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "the gateway to be ready again")
	require.ElementsMatch(t, accepted, s.storedRequestIDs(s.ingestSubject(account, project, "prd", "traces")),
		"every payload answered 200 is in the stream, once")
}

// TestPerKeyRateLimit: a key type's rate limit holds at the gateway, with Retry-After.
func TestPerKeyRateLimit(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "slow.json")
	require.NoError(t, os.WriteFile(profile, []byte(`{"types": [
	  {"name": "ingest", "prefix": "slow_", "encoding": "base62", "random_bytes": 32, "checksum": true,
	   "capabilities": ["ingest"], "scope": "environment", "rotation_grace": "24h", "browser": true,
	   "rate_limit": {"per_second": 0.5, "burst": 3}, "mintable": true},
	  {"name": "account", "prefix": "slow_acct_", "encoding": "base62", "random_bytes": 32, "checksum": true,
	   "capabilities": ["keys:read", "keys:write"], "scope": "account", "requires_plan": "pro", "mintable": true}
	]}`), 0o600))
	s := startSuite(t, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = profile }))
	token, _ := s.signUp("limited")
	_, key := s.IngestKey(token, s.Project(token))
	body := string(tracesBody(t))
	for range 3 {
		s.Must(200, s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf"))
	}
	r := s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf")
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "key", r.Str("tier"))
	require.Equal(t, "2", r.Header.Get("Retry-After"))
}
