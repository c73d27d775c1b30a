package allinone

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/latchkey/latchkey/pkg/natsx"
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

// TestNATSOutage: with NATS gone, ingest answers 503 (never 500) and no gateway trusts its
// cache (it cannot hear of revocations): every request is verified afresh, so a key
// revoked meanwhile is refused at once, long before the staleness bound. Once NATS is back
// the gateway follows the stream again and every payload answered 200 is in the stream.
func TestNATSOutage(t *testing.T) {
	srv := testutil.StartNATS(t)
	const bound = time.Hour // the staleness bound plays no part
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
	require.Equal(t, 200, postTo(urlB, k2))
	require.True(t, gwB.Cache.Trusted())

	srv.Stop()
	testutil.Eventually(t, 5*time.Second, func() bool { return post(k1) == 503 }, "ingest to answer 503 without NATS")
	r := s.Send("POST", s.ingest+"/v1/traces", k1, body, "Content-Type", "application/x-protobuf")
	r.RequireError(t, 503, "unavailable")
	require.NotEmpty(t, r.Header.Get("Retry-After"))
	require.Equal(t, 503, healthz(s.ingest), "not ready while unsubscribed")
	testutil.Eventually(t, 5*time.Second, func() bool { return !gwB.Cache.Trusted() }, "gateway B to distrust its cache")

	// The revocation commits; its event cannot reach the gateways, and nothing needs to.
	require.Equal(t, 503, postTo(urlB, k2), "verified afresh, then refused for want of NATS")
	rr := s.Must(200, s.Call("POST", "/v1/keys/"+id2+":revoke", token, map[string]any{"reason": "outage", "wait_for_gateways": true, "wait_timeout_ms": 200}))
	require.Equal(t, false, rr.Get("receipt.complete"), "without NATS nothing can confirm the revocation: %s", rr.Raw)
	require.Equal(t, 401, postTo(urlB, k2), "the revoked key is refused at once")
	require.Equal(t, 401, post(k2), "by every gateway")
	require.Equal(t, 503, post(k1), "a good key is verified afresh, then refused for want of NATS")

	srv.Start()
	testutil.Eventually(t, 15*time.Second, func() bool { return post(k1) == 200 }, "ingest to recover")
	require.Equal(t, 401, post(k2))
	testutil.Eventually(t, 10*time.Second, func() bool { return healthz(s.ingest) == 200 }, "the gateway to be ready again")
	testutil.Eventually(t, 10*time.Second, gwB.Cache.Trusted, "gateway B to trust its cache again, following the stream")
	require.Equal(t, 401, postTo(urlB, k2))
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

// healthz is the status of GET url/healthz, 0 when it cannot be reached.
func healthz(url string) int {
	resp, err := http.Get(url + "/healthz")
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// grpcHealth is the gRPC health status of the server at addr.
func grpcHealth(t testing.TB, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

// TestJetStreamLoss: whatever JetStream loses (a stream or the audit service's durable
// consumer deleted, or the whole store, on a nats-server restarted empty), every service
// notices and makes it again, with no restart: ingest answers 200, management calls reach
// the audit log, and key events reach the gateway (a complete revocation receipt). While
// a stream cannot be made, the services are not ready.
func TestJetStreamLoss(t *testing.T) {
	srv := testutil.StartNATS(t)
	s := startSuite(t, withNATS(srv.URL))
	token, account := s.signUp("loss")
	project := s.Project(token)
	_, key := s.IngestKey(token, project)
	body := string(tracesBody(t))
	post := func() int {
		return s.Send("POST", s.ingest+"/v1/traces", key, body, "Content-Type", "application/x-protobuf").Status
	}
	require.Equal(t, 200, post())
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := t.Context()

	recovered := func(what string) {
		t.Helper()
		testutil.Eventually(t, 15*time.Second, func() bool { return post() == 200 }, what+": ingest to answer 200")
		// A management call reaches the audit log.
		r := s.Must(200, s.Call("POST", "/v1/projects", token, map[string]any{"name": "after-" + testutil.Suffix()}))
		created := r.Str("project.id")
		testutil.Eventually(t, 15*time.Second, func() bool {
			r := s.Must(200, s.Call("GET", "/v1/audit/events?resource_id="+created, token, nil))
			events, _ := r.Get("events").([]any)
			return len(events) == 1
		}, what+": the audit log to store new events")
		// Key events reach the gateway.
		s.waitForLiveGateways(token, project, 1)
		// gRPC health follows readiness by polling it (server.followReadiness), so it may
		// trail /healthz by a poll.
		testutil.Eventually(t, 10*time.Second, func() bool {
			return healthz(s.api) == 200 && healthz(s.ingest) == 200 && grpcHealth(t, s.keysGRPC) == healthpb.HealthCheckResponse_SERVING
		}, what+": every service to be ready, on /healthz and gRPC health")
	}
	recovered("at the start")

	for _, lost := range []struct {
		what string
		lose func() error
	}{
		{"events stream deleted", func() error { return js.DeleteStream(ctx, natsx.EventsStream(s.ns)) }},
		{"audit stream deleted", func() error { return js.DeleteStream(ctx, natsx.AuditStream(s.ns)) }},
		{"ingest stream deleted", func() error { return js.DeleteStream(ctx, natsx.IngestStream(s.ns)) }},
		{"audit consumer deleted", func() error { return js.DeleteConsumer(ctx, natsx.AuditStream(s.ns), "audit") }},
		{"every stream deleted", func() error {
			for _, name := range []string{natsx.EventsStream(s.ns), natsx.AuditStream(s.ns), natsx.IngestStream(s.ns), natsx.AnonIngestStream(s.ns)} {
				if err := js.DeleteStream(ctx, name); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		require.NoError(t, lost.lose(), lost.what)
		recovered(lost.what)
	}

	// A stream that cannot be made again (another stream holds its subjects): not ready,
	// on /healthz and gRPC health, for as long as that lasts.
	require.NoError(t, js.DeleteStream(ctx, natsx.EventsStream(s.ns)))
	squatter := "SQUATTER_" + testutil.Suffix()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: squatter, Subjects: []string{s.ns + ".events.>"}})
	require.NoError(t, err)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return healthz(s.api) == 503 && healthz(s.ingest) == 503 && grpcHealth(t, s.keysGRPC) == healthpb.HealthCheckResponse_NOT_SERVING
	}, "the services to be not ready without their events stream")
	require.NoError(t, js.DeleteStream(ctx, squatter))
	recovered("events stream held by another stream, then freed")

	// The whole store lost: nats-server restarted on an empty one.
	srv.Restart(true)
	recovered("nats-server restarted with an empty store")
	require.NotEmpty(t, s.storedRequestIDs(s.ingestSubject(account, project, "prd", "traces")))
}

// TestRevokeDuringNATSOutage: a key revoked while NATS is down is never accepted after the
// revoke call returned, however the gateway's reconnection races with requests. Each round
// caches a fresh key, sets senders hammering it, stops NATS, revokes, starts NATS again,
// and lets the senders run until the gateway is following the events stream again.
func TestRevokeDuringNATSOutage(t *testing.T) {
	srv := testutil.StartNATS(t)
	s := startSuite(t, withNATS(srv.URL), withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		// Refusals of the revoked key must stay 401s, not turn into the per-IP limit's 429s.
		g.FailedAuthPerSecond, g.FailedAuthBurst = 1e6, 1e6
	}))
	token, _ := s.signUp("outage-race")
	project := s.Project(token)
	body := tracesBody(t)
	const rounds, senders = 25, 4
	late := 0 // acceptances after a revoke returned, over all rounds
	for round := range rounds {
		id, key := s.IngestKey(token, project)
		require.Equal(t, 200, s.Send("POST", s.ingest+"/v1/traces", key, string(body), "Content-Type", "application/x-protobuf").Status)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		sent := make([]*attempts, senders)
		for i := range sent {
			sent[i] = &attempts{}
			wg.Add(1)
			go sender(s.ingest, key, body, stop, sent[i], &wg)
		}
		srv.Stop()
		s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{"reason": "outage race"}))
		returned := time.Now()
		srv.Start()
		testutil.Eventually(t, 15*time.Second, func() bool { return healthz(s.ingest) == 200 }, "the gateway to follow the stream again")
		following := time.Now()
		testutil.Eventually(t, 10*time.Second, func() bool {
			for _, a := range sent {
				if a.startedAfter(following) < 5 {
					return false
				}
			}
			return true
		}, "attempts once the gateway follows the stream again")
		close(stop)
		wg.Wait()
		n, refused := 0, 0
		for _, a := range sent {
			for _, x := range a.snapshot() {
				switch {
				case !x.start.After(returned):
				case x.status == http.StatusOK:
					n++
				case x.status == http.StatusUnauthorized && x.start.After(following):
					refused++
				}
			}
		}
		require.Positive(t, refused, "round %d: the revoked key is refused once NATS is back", round)
		if n > 0 {
			t.Logf("round %d: %d acceptances after the revoke returned", round, n)
		}
		late += n
	}
	require.Zero(t, late, "acceptances after the revoke returned, over %d rounds", rounds)
}
