package api_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	keysv1 "github.com/latchkey/latchkey/gen/latchkey/keys/v1"
	"github.com/latchkey/latchkey/pkg/apierr"
	"github.com/latchkey/latchkey/pkg/auth"
	"github.com/latchkey/latchkey/pkg/limits"
	"github.com/latchkey/latchkey/pkg/ratelimit"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/services/accounts"
	"github.com/latchkey/latchkey/services/keys"
)

func TestKeysAreScopedToTheirAccount(t *testing.T) {
	s := startSuite(t)
	alice, _ := s.signUp("alice")
	bob, _ := s.signUp("bob")
	aliceProject := s.Project(alice)
	id, secret := s.IngestKey(alice, aliceProject)

	s.Call("GET", "/v1/keys/"+id, bob, nil).RequireError(t, 404, "not_found")
	s.Call("POST", "/v1/keys/"+id+":revoke", bob, map[string]any{}).RequireError(t, 404, "not_found")
	s.Call("POST", "/v1/keys/"+id+":rotate", bob, map[string]any{}).RequireError(t, 404, "not_found")
	s.Call("PATCH", "/v1/keys/"+id, bob, map[string]any{"name": "x"}).RequireError(t, 404, "not_found")
	require.Equal(t, "not_found", s.Verify(bob, secret).Str("code"), "bob cannot probe alice's keys")
	require.Nil(t, s.Verify(bob, secret).Get("key"))
	s.Call("POST", "/v1/keys", bob, map[string]any{"type": "ingest", "project_id": aliceProject, "environment": "prd"}).RequireError(t, 404, "not_found")
	require.Empty(t, s.Must(200, s.Call("GET", "/v1/keys", bob, nil)).Get("keys"))
	// The operator (and gateways, which use its token) can verify any key.
	require.Equal(t, true, s.Verify(s.operator, secret).Get("valid"))
}

// TestGRPCSurface calls the keys service over gRPC as a gateway would: VerifyKey with the
// operator token, and a typed error with ErrorInfo for a bad call.
func TestGRPCSurface(t *testing.T) {
	s := startSuite(t)
	token, _ := s.signUp("grpc")
	_, secret := s.IngestKey(token, s.Project(token))
	conn, err := grpc.NewClient(s.keysGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := keysv1.NewKeysServiceClient(conn)
	ctx := auth.OutgoingBearer(context.Background(), s.operator)
	resp, err := client.VerifyKey(ctx, &keysv1.VerifyKeyRequest{Key: secret, Capability: "ingest"})
	require.NoError(t, err)
	require.True(t, resp.GetValid())
	require.Equal(t, "prd", resp.GetKey().GetEnvironment())

	_, err = client.GetKey(auth.OutgoingBearer(context.Background(), token), &keysv1.GetKeyRequest{Id: "nope"})
	require.True(t, apierr.IsCode(err, apierr.InvalidArgument), "%v", err)
	_, err = client.ListKeys(context.Background(), &keysv1.ListKeysRequest{})
	require.True(t, apierr.IsCode(err, apierr.Unauthenticated), "%v", err)

	health, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, health.GetStatus())
}

// TestManagementRateLimits: the token buckets refuse exactly what exceeds them, with the
// tier and Retry-After.
func TestManagementRateLimits(t *testing.T) {
	slow := ratelimit.Limit{PerSecond: 0.01, Burst: 5}
	s := startSuite(t, func(a *accounts.Config, k *keys.Config) {
		k.Limits = limits.Config{PerAccount: slow}
	})
	token, _ := s.signUp("limited")
	statuses := make([]testutil.Reply, 20)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Add(1)
		go func() { defer wg.Done(); statuses[i] = s.Call("GET", "/v1/keys", token, nil) }()
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, r := range statuses {
		switch r.Status {
		case 200:
			ok++
		case 429:
			limited++
			r.RequireError(t, 429, "rate_limited")
			require.Equal(t, "account", r.Str("tier"))
			require.NotEmpty(t, r.Header.Get("Retry-After"))
			require.Positive(t, r.Get("retry_after_seconds"))
		default:
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
	}
	require.Equal(t, 5, ok, "exactly the burst passes")
	require.Equal(t, 15, limited)

	s2 := startSuite(t, func(a *accounts.Config, _ *keys.Config) {
		a.Limits = limits.Config{PerIP: ratelimit.Limit{PerSecond: 0.01, Burst: 3}}
	})
	for range 3 {
		s2.Call("GET", "/v1/account", "", nil).RequireError(t, 401, "unauthenticated")
	}
	r := s2.Call("GET", "/v1/account", "", nil)
	r.RequireError(t, 429, "rate_limited")
	require.Equal(t, "ip", r.Str("tier"))
}
