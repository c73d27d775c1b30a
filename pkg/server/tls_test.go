package server_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/latchkey/latchkey/pkg/server"
	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
)

// Run with TLS: the shared REST listener and the unit's own HTTP listener serve HTTPS to
// clients without a certificate (/healthz included); the internal gRPC listener serves
// only clients with a certificate of the CA; the REST bridge's in-process connection stays
// plaintext and still reaches the whole chain.
func TestRunServesTLS(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	issued := ca.Issue("svc", "127.0.0.1")
	files, err := tlsfiles.Load(tlsfiles.Paths{CertFile: issued.CertFile, KeyFile: issued.KeyFile, CAFile: ca.File}, zap.NewNop())
	require.NoError(t, err)
	g, err := server.NewGRPC(server.GRPCConfig{Name: "svc", Addr: "127.0.0.1:0", TLS: files})
	require.NoError(t, err)
	u := &server.Unit{Name: "svc", GRPC: g, TLS: files, HTTP: &server.HTTPListener{
		Addr: "127.0.0.1:0", Handler: server.Edge(server.EdgeConfig{Name: "own", Ready: func() bool { return true }}, http.NotFoundHandler()),
	}}
	addrs, _, err := testutil.Background(t, func(ctx context.Context, listening func(map[string]string)) error {
		return server.Run(ctx, server.RunConfig{HTTPAddr: "127.0.0.1:0", Grace: time.Second, TLS: files, OnListening: listening}, u)
	})
	require.NoError(t, err)

	web := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}}
	for _, addr := range []string{addrs["rest"], addrs["svc http"]} {
		testutil.Eventually(t, 10*time.Second, func() bool {
			resp, err := web.Get("https://" + addr + "/healthz")
			if err != nil {
				return false
			}
			_ = resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		}, "GET https://"+addr+"/healthz without a client certificate to answer 200")
	}

	health := func(opt grpc.DialOption) error {
		conn, err := grpc.NewClient(addrs["svc grpc"], opt)
		require.NoError(t, err)
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	p := ca.Issue("peer")
	peer, err := tlsfiles.Load(tlsfiles.Paths{CertFile: p.CertFile, KeyFile: p.KeyFile, CAFile: ca.File}, nil)
	require.NoError(t, err)
	require.NoError(t, health(peer.DialOption()))
	require.Error(t, health(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}))))

	_, err = healthpb.NewHealthClient(g.LocalConn()).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "the in-process connection")
}
