package allinone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	eventsv1 "github.com/latchkey/latchkey/gen/latchkey/events/v1"
	"github.com/latchkey/latchkey/pkg/testutil"
	gateway "github.com/latchkey/latchkey/services/ingest-gateway"
	"github.com/latchkey/latchkey/services/ingest-gateway/loadgen"
)

// unlimitedProfile is the default key types without the gateway rate limit, so a
// throughput benchmark measures the gateway, not the limiter's refusals.
func unlimitedProfile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "unlimited.json")
	require.NoError(tb, os.WriteFile(path, []byte(`{"types": [
	  {"name": "ingest", "prefix": "lk_ing_", "encoding": "base62", "random_bytes": 32, "checksum": true,
	   "capabilities": ["ingest"], "scope": "environment", "rotation_grace": "24h", "browser": true, "mintable": true},
	  {"name": "account", "prefix": "lk_acct_", "encoding": "base62", "random_bytes": 32, "checksum": true,
	   "capabilities": ["keys:read", "keys:write"], "scope": "account", "requires_plan": "pro", "mintable": true}
	]}`), 0o600))
	return path
}

// BenchmarkGatewayThroughput: authenticated OTLP/HTTP requests of 1 KiB per second through
// the gateway (verification, decoding, JetStream publish and ack), beside a bare net/http
// handler that does nothing, driven by the repo's load generator in the same run. The bare
// handler is at its peak at 64 clients and at 128; the gateway, whose answers wait for
// JetStream, needs more requests in flight to fill the cores. Requests for one subject
// share JetStream messages: one key, or 32 keys of one project (a fleet's per-server
// keys), are the case merging is for; 32 keys of 32 projects, each sending a little, the
// other end.
func BenchmarkGatewayThroughput(b *testing.B) {
	profile := unlimitedProfile(b)
	s := startSuite(b, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = profile }))
	token, _ := s.signUp("throughput")
	project := s.Project(token)
	oneProject, ownProjects := make([]string, 32), make([]string, 32)
	for i := range oneProject {
		_, oneProject[i] = s.IngestKey(token, project)
		_, ownProjects[i] = s.IngestKey(token, s.Project(token))
	}
	body := loadgen.TracesBody(1024)
	const duration = 5 * time.Second
	ctx := context.Background()

	bareURL, stop, err := loadgen.Bare()
	require.NoError(b, err)
	defer stop()
	for _, tc := range []struct {
		name    string
		clients int
		keys    []string
	}{
		{"one key", 64, oneProject[:1]},
		{"one key", 128, oneProject[:1]},
		{"32 keys of one project", 128, oneProject},
		{"32 keys of 32 projects", 128, ownProjects},
	} {
		b.Run(fmt.Sprintf("clients=%d/%s", tc.clients, tc.name), func(b *testing.B) {
			cfg := loadgen.Config{URL: bareURL, Keys: tc.keys, Body: body, Concurrency: tc.clients, Duration: duration}
			bare, err := loadgen.Run(ctx, cfg)
			require.NoError(b, err)
			cfg.URL = s.ingest + "/v1/traces"
			gw, err := loadgen.Run(ctx, cfg)
			require.NoError(b, err)
			require.Equal(b, gw.Requests, gw.ByStatus[200], "every request accepted: %v", gw.ByStatus)
			b.ReportMetric(gw.RPS, "gateway-req/s")
			b.ReportMetric(bare.RPS, "bare-req/s")
			b.ReportMetric(gw.RPS/bare.RPS, "ratio")
			b.ReportMetric(float64(gw.P99.Microseconds())/1000, "gateway-p99-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRevocationPropagation: ten gateways, each with its own NATS connection; 1000
// revocations one after another; for each, the time from the revoke call's return until
// the last gateway has dropped the key (0 when all had done so before the call returned).
func BenchmarkRevocationPropagation(b *testing.B) {
	s := startSuite(b)
	token, _ := s.signUp("propagation")
	project := s.Project(token)
	const gateways, revocations = 10, 1000

	var mu sync.Mutex
	applied := map[string][]time.Time{} // key id → when each gateway applied its revocation
	hook := func(gw *gateway.Gateway) {
		gw.Subscriber.OnApplied = func(ev *eventsv1.Event, at time.Time) {
			if r := ev.GetKeyRevoked(); r != nil {
				mu.Lock()
				applied[r.GetKeyId()] = append(applied[r.GetKeyId()], at)
				mu.Unlock()
			}
		}
	}
	for i := range gateways {
		s.extraGateway("prop-"+string(rune('a'+i)), hook)
	}
	s.waitForLiveGateways(token, project, gateways+1)

	ids := make([]string, revocations)
	for i := range ids {
		ids[i], _ = s.IngestKey(token, project)
	}
	returned := make([]time.Time, revocations)
	b.ResetTimer()
	for i, id := range ids {
		s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
		returned[i] = time.Now()
	}
	testutil.Eventually(b, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if len(applied[id]) < gateways {
				return false
			}
		}
		return true
	}, "every gateway to apply every revocation")
	b.StopTimer()
	lags := make([]time.Duration, revocations)
	for i, id := range ids {
		last := applied[id][0]
		for _, at := range applied[id] {
			if at.After(last) {
				last = at
			}
		}
		lags[i] = max(0, last.Sub(returned[i]))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lags[revocations/2]), "p50-ms")
	b.ReportMetric(ms(lags[revocations*99/100]), "p99-ms")
	b.ReportMetric(ms(lags[revocations-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRevocationWithNATSDown: with NATS stopped, how long after a gateway verified a
// key it refuses that key once revoked. Without NATS no gateway trusts its cache, so it is
// the revoke call and one verification, far below the configured staleness bound.
func BenchmarkRevocationWithNATSDown(b *testing.B) {
	srv := testutil.StartNATS(b)
	const bound = 2 * time.Second
	s := startSuite(b, withNATS(srv.URL), withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.MaxStaleness = bound
	}))
	token, _ := s.signUp("bound")
	id, key := s.IngestKey(token, s.Project(token))
	url, gw := s.extraGateway("bound")
	body := string(tracesBody(b))
	post := func() int {
		return s.Send("POST", url+"/v1/traces", key, body, "Content-Type", "application/x-protobuf").Status
	}
	srv.Stop()
	b.ResetTimer()
	gw.Cache.Flush()
	cachedAt := time.Now()
	require.Equal(b, 503, post())
	s.Must(200, s.Call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
	testutil.Eventually(b, bound+5*time.Second, func() bool { return post() == 401 }, "refusal")
	took := time.Since(cachedAt)
	b.StopTimer()
	b.ReportMetric(float64(took.Milliseconds()), "refused-after-ms")
	b.ReportMetric(float64(bound.Milliseconds()), "bound-ms")
	b.ReportMetric(0, "ns/op")
	srv.Start()
}
