package server

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// A peer whose name resolves to several replicas gets calls at every one of them, not all
// at the first: two replicas behind one name each answer a share of 20 calls.
func TestDialPeerSpreadsCallsOverReplicas(t *testing.T) {
	var addrs []resolver.Address
	for _, status := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING} {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		s := grpc.NewServer()
		hs := health.NewServer()
		hs.SetServingStatus("replica", status) // each replica answers differently
		healthpb.RegisterHealthServer(s, hs)
		go func() { _ = s.Serve(lis) }()
		t.Cleanup(s.Stop)
		addrs = append(addrs, resolver.Address{Addr: lis.Addr().String()})
	}
	r := manual.NewBuilderWithScheme("peers")
	r.InitialState(resolver.State{Addresses: addrs})
	resolver.Register(r)

	conn, err := DialPeer("peers:///keys", nil)
	require.NoError(t, err)
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	seen := map[healthpb.HealthCheckResponse_ServingStatus]int{}
	for range 20 {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "replica"})
		require.NoError(t, err)
		seen[resp.GetStatus()]++
	}
	require.Len(t, seen, 2, "calls reached one replica only: %v", seen)
}
