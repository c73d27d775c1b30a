package allinone

import (
	"context"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/auth"
)

// BenchmarkVerifyKeyGRPC measures VerifyKey calls one by one, as operators' backends make
// them (and gateways did on a cache miss before they batched): over gRPC with the operator
// token, 16 concurrent callers; the key from Postgres, project and account fresh from
// accounts, concurrent calls sharing their reads. Reports calls/s and CPU per call.
func BenchmarkVerifyKeyGRPC(b *testing.B) {
	s := startSuite(b)
	token, _ := s.signUp("bench")
	project := s.Project(token)
	secrets := make([]string, 64)
	for i := range secrets {
		_, secrets[i] = s.IngestKey(token, project)
	}
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := keysv1.NewKeysServiceClient(conn)
	ctx := auth.OutgoingBearer(context.Background(), s.operator)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start, cpu := time.Now(), startCPUMeter(b, s.dbURL)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			resp, err := client.VerifyKey(ctx, &keysv1.VerifyKeyRequest{Key: secrets[int(i)%len(secrets)], Capability: "ingest"})
			if err != nil || !resp.GetValid() {
				b.Errorf("verify: %v %v", err, resp.GetCode())
				return
			}
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "calls/s")
	cpu.report(b, n.Load(), "call")
}

// BenchmarkVerifyKeysGRPC measures the gateway's way of asking on cache misses since it
// batches them (verifier.BatchMisses): VerifyKeys calls of 64 keys each, 16 concurrent
// callers, as 16 gateways each with 64 misses under way would send. Reports keys
// verified per second and CPU per key.
func BenchmarkVerifyKeysGRPC(b *testing.B) {
	s := startSuite(b)
	token, _ := s.signUp("bench")
	project := s.Project(token)
	reqs := make([]*keysv1.VerifyKeyRequest, 64)
	for i := range reqs {
		_, secret := s.IngestKey(token, project)
		reqs[i] = &keysv1.VerifyKeyRequest{Key: secret, Capability: "ingest"}
	}
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := keysv1.NewInternalServiceClient(conn)
	ctx := auth.OutgoingBearer(context.Background(), s.operator)
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start, cpu := time.Now(), startCPUMeter(b, s.dbURL)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.VerifyKeys(ctx, &keysv1.VerifyKeysRequest{Requests: reqs})
			if err != nil || len(resp.GetResponses()) != len(reqs) || !resp.GetResponses()[0].GetValid() {
				b.Errorf("verify: %v", err)
				return
			}
			n.Add(int64(len(reqs)))
		}
	})
	b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "keys/s")
	cpu.report(b, n.Load(), "key")
}

// BenchmarkCreateKeyREST measures POST /v1/keys end to end (HTTP, auth through accounts,
// project lookup, insert with its outbox event). Reports p50 and p99 latency.
func BenchmarkCreateKeyREST(b *testing.B) {
	s := startSuite(b)
	token, _ := s.signUp("bench")
	project := s.Project(token)
	body := map[string]any{"type": "ingest", "project_id": project, "environment": "prd", "name": "bench"}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r := s.Call("POST", "/v1/keys", token, body)
		lat = append(lat, time.Since(start))
		if r.Status != 200 {
			b.Fatalf("create: %d %s", r.Status, r.Raw)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
