package server

import (
	"context"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// readyPoll is how often gRPC health follows a unit's readiness.
const readyPoll = 250 * time.Millisecond

// followReadiness keeps g's gRPC health equal to ready(): SERVING while it holds,
// NOT_SERVING otherwise (a stream lost, NATS or Postgres away), so gRPC health checks
// agree with /healthz. It stops when ctx ends; Serve then shuts health down for good.
func followReadiness(ctx context.Context, g *GRPC, ready func() bool) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		status := healthpb.HealthCheckResponse_NOT_SERVING
		if ready() {
			status = healthpb.HealthCheckResponse_SERVING
		}
		select {
		case <-ctx.Done():
			return
		default:
		}
		g.Health.SetServingStatus("", status)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
