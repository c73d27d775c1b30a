package tlsfiles_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/latchkey/latchkey/pkg/testutil"
	"github.com/latchkey/latchkey/pkg/tlsfiles"
)

func load(t *testing.T, i testutil.Issued, caFile string) *tlsfiles.Files {
	t.Helper()
	f, err := tlsfiles.Load(tlsfiles.Paths{CertFile: i.CertFile, KeyFile: i.KeyFile, CAFile: caFile}, zap.NewNop())
	require.NoError(t, err)
	return f
}

// serveGRPC serves gRPC health on a listener wrapped by f and returns its address.
func serveGRPC(t *testing.T, f *tlsfiles.Files, public bool) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(f.Listener(lis, public)) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// check calls gRPC health at addr through creds.
func check(t *testing.T, addr string, creds grpc.DialOption) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, creds)
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func tlsCreds(c *tls.Config) grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(c))
}

// With a CA, an internal listener serves only clients holding a certificate the CA signed.
func TestInternalListenerDemandsAClientCertificateOfTheCA(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	server := load(t, ca.Issue("keys", "127.0.0.1"), ca.File)
	require.True(t, server.Mutual())
	addr := serveGRPC(t, server, false)

	// Another service of the deployment: its own certificate from the same CA.
	require.NoError(t, check(t, addr, load(t, ca.Issue("gateway"), ca.File).DialOption()))

	// A client that trusts the server but has no certificate.
	require.Error(t, check(t, addr, tlsCreds(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})))

	// A client with a certificate of another CA.
	other := testutil.NewCA(t, "another CA")
	cert := other.Issue("intruder").Certificate(t)
	require.Error(t, check(t, addr, tlsCreds(&tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))

	// Plaintext.
	require.Error(t, check(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials())))

	// A client of the deployment refuses a server whose certificate another CA signed.
	impostor := serveGRPC(t, load(t, other.Issue("impostor", "127.0.0.1"), other.File), false)
	require.Error(t, check(t, impostor, load(t, ca.Issue("gateway"), ca.File).DialOption()))
}

// A public listener serves TLS to clients without a certificate, even with a CA (browsers
// and customers' apps have none); plaintext HTTP is answered 400, never served.
func TestPublicListenerAsksNoClientCertificate(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	files := load(t, ca.Issue("gateway", "127.0.0.1"), ca.File)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.Proto))
	})}
	go func() { _ = srv.Serve(files.Listener(lis, true)) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "https://" + lis.Addr().String() + "/"

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "HTTP/2.0", resp.Proto, "h2 is offered")

	// OTLP/gRPC, public too: a client with no certificate.
	grpcAddr := serveGRPC(t, files, true)
	require.NoError(t, check(t, grpcAddr, tlsCreds(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})))

	plain, err := http.Get("http://" + lis.Addr().String() + "/")
	require.NoError(t, err)
	defer plain.Body.Close()
	require.Equal(t, http.StatusBadRequest, plain.StatusCode)
}

// Certificate only, no CA: TLS everywhere, no client certificates asked, peers verified
// against the system's roots (so a private CA's server is refused).
func TestWithoutCAInternalListenersAskNoCertificate(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	files := load(t, ca.Issue("keys", "127.0.0.1"), "")
	require.False(t, files.Mutual())
	addr := serveGRPC(t, files, false)
	require.NoError(t, check(t, addr, tlsCreds(&tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12})))
	require.Error(t, check(t, addr, files.DialOption()), "the test CA is not among the system's roots")
}

// A nil Files is plaintext.
func TestNilFilesIsPlaintext(t *testing.T) {
	var files *tlsfiles.Files
	addr := serveGRPC(t, files, false)
	require.NoError(t, check(t, addr, files.DialOption()))
	require.Nil(t, files.ServerConfig(false))
	require.False(t, files.Mutual())
	f, err := tlsfiles.Load(tlsfiles.Paths{}, nil)
	require.NoError(t, err)
	require.Nil(t, f)
}

// Missing, unreadable or mismatched files are errors naming them, at Load; a key's
// contents are never in one.
func TestLoadErrors(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	a, b := ca.Issue("a", "127.0.0.1"), ca.Issue("b", "127.0.0.1")
	garbage := t.TempDir() + "/garbage.pem"
	testutil.WriteFile(t, garbage, []byte("not PEM"))
	key, err := os.ReadFile(a.KeyFile)
	require.NoError(t, err)
	for name, c := range map[string]struct {
		paths tlsfiles.Paths
		want  []string
	}{
		"certificate without key": {tlsfiles.Paths{CertFile: a.CertFile}, []string{"a certificate file and a key file are both required"}},
		"CA alone":                {tlsfiles.Paths{CAFile: ca.File}, []string{"a certificate file and a key file are both required"}},
		"missing certificate":     {tlsfiles.Paths{CertFile: "/nonexistent/tls.crt", KeyFile: a.KeyFile}, []string{"certificate file", "/nonexistent/tls.crt", "no such file"}},
		"missing key":             {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: "/nonexistent/tls.key"}, []string{"key file", "/nonexistent/tls.key"}},
		"missing CA":              {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: a.KeyFile, CAFile: "/nonexistent/ca.crt"}, []string{"CA file", "/nonexistent/ca.crt"}},
		"key of another":          {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: b.KeyFile}, []string{a.CertFile, b.KeyFile, "does not match"}},
		"certificate not PEM":     {tlsfiles.Paths{CertFile: garbage, KeyFile: a.KeyFile}, []string{garbage}},
		"key not PEM":             {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: garbage}, []string{garbage}},
		"CA not PEM":              {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: a.KeyFile, CAFile: garbage}, []string{"CA file " + garbage + " holds no PEM certificate"}},
		"key as CA":               {tlsfiles.Paths{CertFile: a.CertFile, KeyFile: a.KeyFile, CAFile: a.KeyFile}, []string{"holds no PEM certificate"}},
	} {
		t.Run(name, func(t *testing.T) {
			f, err := tlsfiles.Load(c.paths, nil)
			require.Nil(t, f)
			require.Error(t, err)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), string(key[40:80]))
		})
	}
}

// servedCert is the certificate a TLS listener at addr presents.
func servedCert(t *testing.T, addr string, pool *x509.CertPool, client ...tls.Certificate) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: client, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// TLS 1.3 reports a refused client certificate on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A rotated certificate, key or CA is served from the next handshake; a half-written
// rotation (a certificate beside the old key) keeps the last good pair and is logged once.
func TestRotatedFilesAreUsed(t *testing.T) {
	ca := testutil.NewCA(t, "old CA")
	files := ca.Issue("keys", "127.0.0.1")
	core, logs := observer.New(zap.InfoLevel)
	f, err := tlsfiles.Load(tlsfiles.Paths{CertFile: files.CertFile, KeyFile: files.KeyFile, CAFile: ca.File}, zap.New(core))
	require.NoError(t, err)
	f.Interval = 0 // every handshake reads the files
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tl := f.Listener(lis, false)
	t.Cleanup(func() { _ = tl.Close() })
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); _, _ = io.Copy(io.Discard, c); _ = c.Close() }() // open until the client is done
		}
	}()
	addr := lis.Addr().String()
	oldClient := ca.Issue("gateway").Certificate(t)
	first, err := servedCert(t, addr, ca.Pool, oldClient)
	require.NoError(t, err)

	// Half-written: the new certificate, the old key.
	next := ca.Issue("keys", "127.0.0.1")
	copyFile(t, next.CertFile, files.CertFile)
	got, err := servedCert(t, addr, ca.Pool, oldClient)
	require.NoError(t, err)
	require.Equal(t, first.SerialNumber, got.SerialNumber, "the last good pair")
	_, _ = servedCert(t, addr, ca.Pool, oldClient)
	warned := logs.FilterMessage("TLS files changed but cannot be used; keeping the last good ones").All()
	require.Len(t, warned, 1, "logged once")
	require.NotContains(t, warned[0].ContextMap()["error"], "PRIVATE KEY")

	// The key follows: the new pair is served.
	copyFile(t, next.KeyFile, files.KeyFile)
	got, err = servedCert(t, addr, ca.Pool, oldClient)
	require.NoError(t, err)
	require.NotEqual(t, first.SerialNumber, got.SerialNumber)
	require.Len(t, logs.FilterMessage("TLS files reloaded").All(), 1)

	// A new CA: its clients are served, the old CA's are not.
	newCA := testutil.NewCA(t, "new CA")
	copyFile(t, newCA.File, ca.File)
	_, err = servedCert(t, addr, ca.Pool, newCA.Issue("gateway").Certificate(t))
	require.NoError(t, err)
	_, err = servedCert(t, addr, ca.Pool, oldClient)
	require.Error(t, err)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	testutil.WriteFile(t, to, b)
}

// NATS with TLS and client verification: the files make the connection; without them a
// service cannot connect.
func TestNATSOverMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t, "latchkey test CA")
	srv := ca.Issue("nats", "127.0.0.1")
	n := testutil.StartNATS(t, "tls {", "  cert_file: \""+srv.CertFile+"\"", "  key_file: \""+srv.KeyFile+"\"",
		"  ca_file: \""+ca.File+"\"", "  verify: true", "}")
	files := load(t, ca.Issue("keys"), ca.File)

	nc, err := nats.Connect(n.URL, files.NATSOption(n.URL))
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Publish("tls.test", []byte("hello")))
	require.NoError(t, nc.Flush())

	// tls:// asks for TLS without a CA too; the client's certificate still goes (and the
	// server's CA is not among the system's roots, so it is refused).
	noCA := load(t, ca.Issue("keys"), "")
	tlsURL := "tls://127.0.0.1:" + n.URL[len("nats://127.0.0.1:"):]
	_, err = nats.Connect(tlsURL, noCA.NATSOption(tlsURL), nats.MaxReconnects(0))
	require.ErrorContains(t, err, "certificate")

	_, err = nats.Connect(n.URL, nats.MaxReconnects(0))
	require.Error(t, err, "no client certificate")
}
