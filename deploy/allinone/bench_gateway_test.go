package allinone

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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
// handler that does nothing, driven by the repo's load generator in the same run.
func BenchmarkGatewayThroughput(b *testing.B) {
	profile := unlimitedProfile(b)
	s := startSuite(b, withConfig(func(_ *accountsConfig, k *keysConfig, _ *gatewayConfig, _ *auditConfig) { k.KeyProfile = profile }))
	token, _ := s.signUp("throughput")
	_, key := s.ingestKey(token, s.project(token))
	body := loadgen.TracesBody(1024)
	const concurrency, duration = 64, 5 * time.Second
	ctx := context.Background()

	bareURL, stop, err := loadgen.Bare()
	require.NoError(b, err)
	defer stop()
	b.ResetTimer()
	bare, err := loadgen.Run(ctx, loadgen.Config{URL: bareURL, Key: key, Body: body, Concurrency: concurrency, Duration: duration})
	require.NoError(b, err)
	gw, err := loadgen.Run(ctx, loadgen.Config{URL: s.ingest + "/v1/traces", Key: key, Body: body, Concurrency: concurrency, Duration: duration})
	require.NoError(b, err)
	b.StopTimer()
	require.Equal(b, gw.Requests, gw.ByStatus[200], "every request accepted: %v", gw.ByStatus)
	b.ReportMetric(gw.RPS, "gateway-req/s")
	b.ReportMetric(bare.RPS, "bare-req/s")
	b.ReportMetric(gw.RPS/bare.RPS, "ratio")
	b.ReportMetric(float64(gw.P99.Microseconds())/1000, "gateway-p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRevocationPropagation: ten gateways, each with its own NATS connection; 1000
// revocations one after another; for each, the time from the revoke call's return until
// the last gateway has dropped the key (0 when all had done so before the call returned).
func BenchmarkRevocationPropagation(b *testing.B) {
	s := startSuite(b)
	token, _ := s.signUp("propagation")
	project := s.project(token)
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
		ids[i], _ = s.ingestKey(token, project)
	}
	returned := make([]time.Time, revocations)
	b.ResetTimer()
	for i, id := range ids {
		s.must(200, s.call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
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

// BenchmarkRevocationWithNATSDown: with NATS stopped, how long after a gateway cached a
// key it refuses that key once revoked. It should equal the configured staleness bound.
func BenchmarkRevocationWithNATSDown(b *testing.B) {
	srv := testutil.StartNATS(b)
	const bound = 2 * time.Second
	s := startSuite(b, withNATS(srv.URL), withConfig(func(_ *accountsConfig, _ *keysConfig, g *gatewayConfig, _ *auditConfig) {
		g.MaxStaleness = bound
	}))
	token, _ := s.signUp("bound")
	id, key := s.ingestKey(token, s.project(token))
	url, gw := s.extraGateway("bound")
	body := string(tracesBody(b))
	post := func() int {
		return s.send("POST", url+"/v1/traces", key, body, "Content-Type", "application/x-protobuf").status
	}
	srv.Stop()
	b.ResetTimer()
	gw.Cache.Flush()
	cachedAt := time.Now()
	require.Equal(b, 503, post())
	s.must(200, s.call("POST", "/v1/keys/"+id+":revoke", token, map[string]any{}))
	testutil.Eventually(b, bound+5*time.Second, func() bool { return post() == 401 }, "refusal")
	took := time.Since(cachedAt)
	b.StopTimer()
	b.ReportMetric(float64(took.Milliseconds()), "refused-after-ms")
	b.ReportMetric(float64(bound.Milliseconds()), "bound-ms")
	b.ReportMetric(0, "ns/op")
	srv.Start()
}

// BenchmarkJetStreamPublishOnly is the ceiling under the gateway: 1 KiB publishes to a
// file-backed stream on the same NATS server, 64 at a time, each waiting for its ack.
func BenchmarkJetStreamPublishOnly(b *testing.B) {
	ns := testutil.Namespace(b)
	nc, err := nats.Connect(testutil.NATSURL())
	require.NoError(b, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(b, err)
	ctx := context.Background()
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: strings.ToUpper(ns) + "_INGEST", Subjects: []string{ns + ".ingest.>"}, Storage: jetstream.FileStorage})
	require.NoError(b, err)
	body := loadgen.TracesBody(1024)
	const workers, duration = 64, 5 * time.Second
	var acked, seq atomic.Int64
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				// Headers as the gateway sends them, a fresh Nats-Msg-Id each.
				m := &nats.Msg{Subject: ns + ".ingest.a.p.e.traces", Data: body, Header: nats.Header{}}
				m.Header.Set("Latchkey-Key-Id", "key_01kxyz")
				m.Header.Set("Latchkey-Request-Id", "req_01kxyz")
				m.Header.Set(jetstream.MsgIDHeader, "key_01kxyz:traces:req_"+strconv.FormatInt(seq.Add(1), 10))
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					continue
				}
				select {
				case <-f.Ok():
					acked.Add(1)
				case <-f.Err():
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(acked.Load())/duration.Seconds(), "acked-msg/s")
	b.ReportMetric(0, "ns/op")
}
